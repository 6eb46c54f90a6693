"""The ablation of the flow-prior network on the checks of ``scripts/release_eval.sh`` (the model card's
tables).

    python scripts/ablate_prior.py parts WEIGHTS OUTDIR [--clips DIR]
    python scripts/ablate_prior.py data OUTDIR [--steps 600] [--recipe recipes/prior-small.toml] [--clips DIR]

``parts``: the same trained tensors with parts of the network switched back to their zero start. Rows:

- ``prior``: every correction zero (an untrained network of the same size): the in-between frame is the
  DIS prior's warp-and-blend and the key frame is the input;
- ``+ correction``: the trained motion (pair correction, per-t flow and visibility head), the restoration
  path and the light refiner zeroed (their last layers: they add nothing);
- ``+ restoration``: the whole trained network.

``data``: short runs of the recipe (``--steps``, each with its own full schedule, the same seed), one with
every data source and one with each source removed in turn: REDS-style blur from the scene's motion (a),
camera shake (b), the synthetic scenes (c), and the real footage itself (the self-supervised triplets:
synthetic scenes only).

Each row runs the same ``vidrestore eval`` commands as the release evaluation, with ``--methods model``.
Writes OUTDIR/ROW/*.json, OUTDIR/ablation.json and prints the table (markdown).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import torch

from vidrestore.model.prior_net import PriorNet
from vidrestore.train.prior_loop import load_prior_recipe, train_prior
from vidrestore.weights import load_model, save_weights

HERE = Path(__file__).resolve().parent


def slug(row: str) -> str:
    """A row's folder name: "without (a) motion blur" -> "without-a-motion-blur", "+ correction" -> "correction"."""
    return row.replace("(", "").replace(")", "").replace("+ ", "").replace(" ", "-")
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


def data_variants(recipe: Path, out: Path, steps: int) -> dict[str, Path]:
    """Train the short runs (resumable: a finished run is not trained again) -> their weights."""
    base = load_prior_recipe(recipe)
    mix = dict(base.mix)
    blur = base.blur
    runs = {
        "all sources": {},
        "without (a) motion blur": {"blur": dataclasses.replace(blur, temporal_prob=0.0, shake_prob=1.0)},
        "without (b) camera shake": {"blur": dataclasses.replace(blur, temporal_prob=1.0, shake_prob=0.0)},
        "without (c) synthetic scenes": {"mix": tuple((k, v) for k, v in mix.items() if k != "synthetic")},
        "without real footage": {"mix": (("synthetic", 1.0),)},
    }
    files = {}
    for row, change in runs.items():
        name = slug(row)
        cfg = dataclasses.replace(base, **change, steps=steps, warmup=min(base.warmup, steps // 4),
                                  out=str(out / "runs" / name), val_every=steps, minutes=None)
        result = train_prior(cfg, echo=lambda line, name=name: print(f"[{name}] {line}", flush=True))
        files[row] = Path(result["export"])
    return files


def run_checks(files: dict[str, Path], out: Path, clips: Path) -> dict[str, dict[str, float]]:
    if not clips.exists():
        subprocess.run([sys.executable, str(HERE / "cut_clips.py"), "--out", str(clips), "--frames", "91",
                        "--size", "640x360", "--format", "png"], check=True, stdout=subprocess.DEVNULL)
    table: dict[str, dict[str, float]] = {}
    for row, path in files.items():
        table[row] = {}
        results: dict[tuple[str, ...], dict] = {}
        folder = out / slug(row)
        for name, eval_args, which in CHECKS:
            argv = [a.replace("{clips}", str(clips)) for a in eval_args]
            if tuple(argv) not in results:
                # this interpreter's vidrestore, so a run needs no activated environment
                cmd = [sys.executable, "-m", "vidrestore", "eval", *argv, "--weights", str(path),
                       "--methods", "model", "--json"]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                results[tuple(argv)] = json.loads(done.stdout)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{len(results)}.json").write_text(done.stdout)
            table[row][name] = results[tuple(argv)]["methods"]["model"]["mean"][which]["psnr"]
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    parts = sub.add_parser("parts")
    parts.add_argument("weights")
    parts.add_argument("out", type=Path)
    data = sub.add_parser("data")
    data.add_argument("out", type=Path)
    data.add_argument("--steps", type=int, default=600)
    data.add_argument("--recipe", type=Path, default=HERE.parent / "recipes" / "prior-small.toml")
    for p in (parts, data):
        p.add_argument("--clips", type=Path, help="the cut clips (default: cut them into OUT/clips360)")
    args = ap.parse_args()
    clips = args.clips or args.out / "clips360"
    if args.what == "parts":
        files = variants(args.weights, args.out / "weights")
    else:
        files = data_variants(args.recipe, args.out, args.steps)
    table = run_checks(files, args.out, clips)
    (args.out / "ablation.json").write_text(json.dumps(table, indent=1))
    names = [c[0] for c in CHECKS]
    print("| row | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for row in files:
        print(f"| {row} | " + " | ".join(f"{table[row][n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
