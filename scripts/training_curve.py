"""The learning curve of a training run: validation PSNR on held-out windows against training hours.

    python scripts/training_curve.py RUN [RUN ...] --png docs/training-curve.png   (needs matplotlib)

Reads each RUN/log.jsonl (runs given in order: a later run continues an earlier one's hours). Prints a Markdown
table, one line per validation: cumulative hours (the warm start's included), step, and each series as its PSNR
and its gain over the floor (the input key frame; the prior's warp-and-blend for in-between frames).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SERIES = {
    "real.key": "real blur, key frames",
    "real.inter": "real blur, in-between",
    "interp.inter": "sharp input, in-between (interp mode)",
    "synthetic.key": "synthetic, key frames",
    "synthetic.inter": "synthetic, in-between",
}


def read_run(folder: Path, offset_hours: float) -> tuple[list[dict], dict, float]:
    floor: dict = {}
    rows: list[dict] = []
    base = 0.0
    for line in (folder / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == "init":
            base = float(rec["base"]["seconds"]) / 3600
        elif rec["kind"] == "floor":
            floor = rec["val"]
        elif rec["kind"] == "val" and "hours" in rec:
            rows.append({"hours": offset_hours + base + float(rec["hours"]), "step": rec["step"], **rec["val"]})
    last = rows[-1]["hours"] if rows else offset_hours + base
    return rows, floor, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--every", type=int, default=1, help="print every N-th validation in the table")
    ap.add_argument("--ablation", action="append", default=[], metavar="LABEL=RUN",
                    help="another run (same start, one part changed): its real key-frame gain, dashed, and a table")
    args = ap.parse_args()
    rows: list[dict] = []
    floor: dict = {}
    offset = 0.0
    for run in args.runs:
        part, floor_run, offset = read_run(run, offset)
        rows += part
        floor = floor or floor_run
    keys = [k for k in SERIES if k in floor]
    print("| hours | step | " + " | ".join(f"{k} (gain)" for k in keys) + " |")
    print("| ---: | ---: | " + " | ".join("---:" for _ in keys) + " |")
    print("| floor | | " + " | ".join(f"{floor[k]:.2f}" for k in keys) + " |")
    for i, r in enumerate(rows):
        if i % args.every and i != len(rows) - 1:
            continue
        cells = [f"{r[k]:.2f} ({r[k] - floor[k]:+.2f})" for k in keys]
        print(f"| {r['hours']:.2f} | {r['step']} | " + " | ".join(cells) + " |")
    others = []
    for item in args.ablation:
        label, _, run = item.partition("=")
        part, _, _ = read_run(Path(run), 0.0)
        others.append((label, part))
        print(f"\n{label} ({run}):\n\n| hours | step | real.key (gain) | synthetic.key (gain) |\n| ---: | ---: | ---: | ---: |")
        for r in part:
            print(f"| {r['hours']:.2f} | {r['step']} | {r['real.key']:.2f} ({r['real.key'] - floor['real.key']:+.2f}) | "
                  f"{r['synthetic.key']:.2f} ({r['synthetic.key'] - floor['synthetic.key']:+.2f}) |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        for k in keys:
            ax.plot([r["hours"] for r in rows], [r[k] - floor[k] for r in rows], marker=".", label=SERIES[k])
        for label, part in others:
            ax.plot([r["hours"] for r in part], [r["real.key"] - floor["real.key"] for r in part], ls="--",
                    marker=".", label=f"{SERIES['real.key']}: {label}")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel("training hours (cumulative, 2-core CPU)")
        ax.set_ylabel("PSNR gain over the floor (dB)")
        ax.set_title("vidrestore small: validation on held-out windows")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
