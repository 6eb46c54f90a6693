"""The learning curve of a training run: validation PSNR on held-out windows against training hours.

    python scripts/training_curve.py RUN [RUN ...] --png docs/training-curve.png   (needs matplotlib)

Reads each RUN/log.jsonl (runs given in order: a run warm-started from an earlier one's export counts the
hours in that file; one without a warm start continues the runs before it). Prints a Markdown
table, one line per validation: cumulative hours (the warm start's included), step, and each series as its PSNR
and its gain over the floor (the input key frame; the prior's warp-and-blend for in-between frames).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SERIES = {
    "real.key": "real blur, key frames",
    "real.single.key": "real blur, key frame alone",
    "real.inter": "real blur, in-between",
    "interp.inter": "sharp input, in-between (interp mode)",
    "synthetic.key": "synthetic, key frames",
    "synthetic.inter": "synthetic, in-between",
    "motion.key": "real motion blur (the checks' kind), key frames",
}
COMPARED = ("real.key", "motion.key")  # the series an ablation run is drawn with


def read_run(folder: Path, offset_hours: float) -> tuple[list[dict], dict, float]:
    """The run's validations, each with the floor of its validation set (a run whose data changed made a new
    set: its rows after that carry the new floor), the last floor, and the run's last hour."""
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
            # a warm start's hours are in its file (cumulative); a run without one continues the runs before it
            start = base if base else offset_hours
            rows.append({"hours": start + float(rec["hours"]), "step": rec["step"], "floor": floor, **rec["val"]})
    last = rows[-1]["hours"] if rows else (base or offset_hours)
    return rows, floor, last


def segments(rows: list[dict]) -> list[list[dict]]:
    """Rows split where the validation set changed (its floor moved)."""
    out: list[list[dict]] = []
    for r in rows:
        if not out or _changed(out[-1][-1]["floor"], r["floor"]):
            out.append([])
        out[-1].append(r)
    return out


def _changed(a: dict, b: dict) -> bool:
    """The validation set changed: a floor moved (a series added beside the others is not a change)."""
    common = set(a) & set(b)
    return not common or any(abs(a[k] - b[k]) > 0.01 for k in common)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--every", type=int, default=1, help="print every N-th validation in the table")
    ap.add_argument("--ablation", action="append", default=[], metavar="LABEL=RUN",
                    help="another run (same start, one part changed): its real key-frame gain, dashed, and a table")
    ap.add_argument("--mark", action="append", default=[], metavar="HOURS=LABEL",
                    help="a dotted line at these cumulative hours, labelled (a change of recipe, a stage)")
    args = ap.parse_args()
    rows: list[dict] = []
    offset = 0.0
    for run in args.runs:
        part, _, offset = read_run(run, offset)
        rows += part
    parts = segments(rows)
    for n, seg in enumerate(parts):
        floor = seg[-1]["floor"]  # (a series added within the set, as 'motion', has its floor from then on)
        keys = [k for k in SERIES if any(k in r["floor"] for r in seg)]
        if n:
            print(f"\nvalidation set {n + 1} (the training data changed at {seg[0]['hours']:.2f} h):\n")
        print("| hours | step | " + " | ".join(f"{k} (gain)" for k in keys) + " |")
        print("| ---: | ---: | " + " | ".join("---:" for _ in keys) + " |")
        print("| floor | | " + " | ".join(f"{floor[k]:.2f}" for k in keys) + " |")
        for i, r in enumerate(seg):
            if i % args.every and i != len(seg) - 1:
                continue
            cells = [f"{r[k]:.2f} ({r[k] - floor[k]:+.2f})" if k in r["floor"] else "" for k in keys]
            print(f"| {r['hours']:.2f} | {r['step']} | " + " | ".join(cells) + " |")
    others = []
    for item in args.ablation:
        label, _, run = item.partition("=")
        part, _, _ = read_run(Path(run), 0.0)  # each row scored against its own validation set's floor
        others.append((label, part))
        cols = [k for k in ("real.key", "real.single.key", "motion.key", "synthetic.key")
                if any(k in r["floor"] for r in part)]
        print(f"\n{label} ({run}):\n\n| hours | step | " + " | ".join(f"{k} (gain)" for k in cols) + " |\n"
              "| ---: | ---: | " + " | ".join("---:" for _ in cols) + " |")
        for r in part:
            cells = [f"{r[k]:.2f} ({r[k] - r['floor'][k]:+.2f})" if k in r["floor"] else "" for k in cols]
            print(f"| {r['hours']:.2f} | {r['step']} | " + " | ".join(cells) + " |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
        colours = {k: f"C{i}" for i, k in enumerate(SERIES)}
        for n, seg in enumerate(parts):
            for k in [k for k in SERIES if any(k in r["floor"] for r in seg)]:
                rows_k = [r for r in seg if k in r["floor"]]
                ax.plot([r["hours"] for r in rows_k], [r[k] - r["floor"][k] for r in rows_k], marker=".",
                        color=colours[k],
                        label=SERIES[k] if n == len(parts) - 1 or k not in parts[-1][0]["floor"] else None)
            if n:
                ax.axvline(seg[0]["hours"], color="grey", ls=":", lw=1)
                ax.annotate("new training blur\n(and validation set)", (seg[0]["hours"], 0.0), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        for mark in args.mark:
            at, _, text = mark.partition("=")
            ax.axvline(float(at), color="grey", ls=":", lw=1)
            ax.annotate(text, (float(at), 0.0), fontsize=7, xytext=(3, -12), textcoords="offset points")
        for label, part in others:
            for k in COMPARED:
                rows = [r for r in part if k in r["floor"]]
                if rows:
                    ax.plot([r["hours"] for r in rows], [r[k] - r["floor"][k] for r in rows], ls="--", marker=".",
                            color=colours[k], alpha=0.6, label=f"{SERIES[k]}: {label}")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel("training hours (cumulative, 2-core CPU)")
        ax.set_ylabel("PSNR gain over the floor (dB)")
        ax.set_title("vidrestore small: validation on held-out windows")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
