"""The ablation of a trained flow-prior network on the checks of ``scripts/release_eval.sh`` (the model card's
table): the same tensors with parts of the network switched back to their zero start.

    python scripts/ablate_prior.py WEIGHTS OUTDIR [--clips OUTDIR/clips360]

Rows:

- ``prior``: every correction zero (an untrained network of the same size): the in-between frame is the
  DIS prior's warp-and-blend and the key frame is the input;
- ``+ correction``: the trained motion (pair correction, per-t flow and visibility head), the restoration
  path and the light refiner zeroed (their last layers: they add nothing);
- ``+ restoration``: the whole trained network.

Each row runs the same ``vidrestore eval`` commands as the release evaluation, with ``--methods model``.
Writes OUTDIR/ROW/*.json and prints the table (markdown).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from vidrestore.model.prior_net import PriorNet
from vidrestore.weights import load_model, save_weights

HERE = Path(__file__).resolve().parent
ROWS = ("prior", "+ correction", "+ restoration")
CHECKS: list[tuple[str, list[str], str]] = [
    # (name, eval arguments after `eval`, which frames: key or inter)
    ("synthetic joint 8x, key", ["--synthetic"], "key"),
    ("synthetic joint 8x, in-between", ["--synthetic"], "inter"),
    ("real interp 2x, in-between", ["{clips}", "--protocol", "interp", "--stride", "2"], "inter"),
    *[(f"real flow blur {n} px, key", ["{clips}", "--protocol", "deblur", "--stride", "16", "--exposure", "15",
                                       "--blur-length", str(n)], "key") for n in (8, 16, 32)],
    ("real sharp, deblur mode", ["{clips}", "--protocol", "deblur", "--stride", "1", "--exposure", "1"], "key"),
]


def variants(weights: str, out: Path) -> dict[str, Path]:
    trained = load_model(weights, device="cpu")
    if not isinstance(trained, PriorNet):
        raise SystemExit(f"{weights}: not a flow-prior network")
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    prior = PriorNet(trained.config)
    files["prior"] = out / "prior.safetensors"
    save_weights(prior, files["prior"])
    corr = PriorNet(trained.config)
    corr.load_state_dict(trained.state_dict())
    with torch.no_grad():
        for head in (corr.restorer.out[0], corr.refiner.out[0]):
            head.weight.zero_()
            head.bias.zero_()
    files["+ correction"] = out / "correction.safetensors"
    save_weights(corr, files["+ correction"])
    files["+ restoration"] = Path(weights)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("out", type=Path)
    ap.add_argument("--clips", type=Path, help="the cut clips (default: cut them into OUT/clips360)")
    args = ap.parse_args()
    clips = args.clips or args.out / "clips360"
    if not clips.exists():
        subprocess.run([sys.executable, str(HERE / "cut_clips.py"), "--out", str(clips), "--frames", "91",
                        "--size", "640x360", "--format", "png"], check=True, stdout=subprocess.DEVNULL)
    files = variants(args.weights, args.out / "weights")
    table: dict[str, dict[str, float]] = {}
    for row, path in files.items():
        table[row] = {}
        results: dict[tuple[str, ...], dict] = {}
        for name, eval_args, which in CHECKS:
            argv = [a.replace("{clips}", str(clips)) for a in eval_args]
            if tuple(argv) not in results:
                cmd = ["vidrestore", "eval", *argv, "--weights", str(path), "--methods", "model", "--json"]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                results[tuple(argv)] = json.loads(done.stdout)
                slug = row.strip("+ ").replace(" ", "_")
                (args.out / slug).mkdir(parents=True, exist_ok=True)
                (args.out / slug / f"{len(results)}.json").write_text(done.stdout)
            table[row][name] = results[tuple(argv)]["methods"]["model"]["mean"][which]["psnr"]
    (args.out / "ablation.json").write_text(json.dumps(table, indent=1))
    names = [c[0] for c in CHECKS]
    print("| row | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for row in ROWS:
        print(f"| {row} | " + " | ".join(f"{table[row][n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
