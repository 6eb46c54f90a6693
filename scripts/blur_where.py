#!/usr/bin/env python
"""Where a network deblurs: key frames scored over all pixels and over the pixels the blur changed most (per
window, the 10% and 25% with the largest |blurred - sharp|), on held-out windows of two kinds:

- ``motion``: frames blurred by the scene's own motion only, as the release checks of real motion blur blur them
  (in the development clips, mostly that of objects: a dog, hands, a toy);
- ``real``: the training blur (camera shake, the scene's motion, or both);
- ``synthetic`` (with ``--synthetic``): rendered scenes, a moving camera and moving objects.

    python scripts/blur_where.py [--weights W ...] [--recipe recipes/prior-small.toml]

The windows are the training run's validation windows, made anew from the recipe's held-out frames (seeded: the
same every time; about a minute). Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def db(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", default=[None])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "prior-small.toml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--synthetic", action="store_true", help="the synthetic validation windows too")
    args = ap.parse_args()
    import vidrestore
    from vidrestore import threads
    from vidrestore.train.batches import validation_batches
    from vidrestore.train.cache import motion_validation, validation_windows
    from vidrestore.train.prior_loop import load_prior_recipe, outputs

    threads.apply(args.threads)
    settings = load_prior_recipe(args.recipe, {"out": "unused"}).cache_settings()
    windows = {"motion": motion_validation(settings)}
    # the run's own sources in its order (one seeded generator draws them in turn), interp left out after
    made = validation_windows(settings, ["real", "interp", *(["synthetic"] if args.synthetic else [])],
                              log=lambda _: None)
    windows.update({k: v for k, v in made.items() if k != "interp"})
    batches = validation_batches(windows)
    for spec in args.weights:
        model = vidrestore.load_model(spec, device="cpu").eval()
        for source in windows:
            acc: dict[str, list[float]] = {}
            with torch.no_grad():
                for s, b in batches:
                    if s != source:
                        continue
                    key, _ = outputs(model, b)
                    e_in = (b.inputs[:, 1] - b.key).square().mean(1).flatten(1)
                    e_out = (key.float().clamp(0, 1) - b.key).square().mean(1).flatten(1)
                    for i in range(e_in.shape[0]):
                        for name, q in (("all", 0.0), ("top25", 0.75), ("top10", 0.9)):
                            m = e_in[i] >= e_in[i].quantile(q)
                            acc.setdefault(name + ".in", []).append(float(e_in[i][m].mean()))
                            acc.setdefault(name + ".out", []).append(float(e_out[i][m].mean()))
            r = {k: db(sum(v) / len(v)) for k, v in acc.items()}
            parts = [f"{n} {r[n + '.in']:.2f} -> {r[n + '.out']:.2f} ({r[n + '.out'] - r[n + '.in']:+.2f})"
                     for n in ("all", "top25", "top10")]
            print(f"{spec or 'default'} {source}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
