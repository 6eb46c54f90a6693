#!/usr/bin/env python
"""Deblurring on synthetic scenes textured with real frames: key-frame gains where only the camera moves, where
only objects move, and both; exact motion and exact sharp frames.

    python scripts/synthetic_textured.py [--weights W ...] [--count 32]

Textures: every 8th of the first 96 frames of ../shared/data/clips (held out of training). Scenes at 128 px, 8x,
exposure the whole frame interval, speeds up to 16 px per frame (uniform), no noise, seeded. The procedural
textures of the synthetic checks (stripes, noise, gradients) are left out here: on them v4 changes nothing.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "clips"
CASES = (("camera pan", 0, 0.0), ("objects, still camera", 3, 1.0), ("both", 3, 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", default=[None])
    ap.add_argument("--count", type=int, default=32, help="scenes per case [32]")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import vidrestore
    from vidrestore import threads
    from vidrestore.synth.scenes import SceneConfig, render_batch
    from vidrestore.train.batches import validation_batches
    from vidrestore.train.prior_data import SYNTHETIC, footage_paths, footage_textures, load_footage, make_windows
    from vidrestore.train.prior_loop import outputs

    threads.apply(args.threads)
    bank = footage_textures(load_footage(footage_paths([CLIPS]), 640, 0, max_frames=96), every=8)
    for spec in args.weights:
        model = vidrestore.load_model(spec, device="cpu").eval()
        parts = []
        for name, objects, still in CASES:
            cfg = SceneConfig(height=128, width=128, factor=8, exposure=1.0, sharp_prob=0.0, max_speed=16.0,
                              speed_power=1.0, static_prob=0.0, static_camera_prob=still, min_objects=objects,
                              max_objects=objects, noise=0.0, brightness=0.0, real_texture_fraction=1.0)
            g = torch.Generator().manual_seed(11)
            s = render_batch(cfg, args.count, g, "cpu", bank)
            w = make_windows(s.inputs, torch.stack((s.key, s.key), 1), s.inter, s.times, SYNTHETIC, False, None, g)
            e_in, e_out = [], []
            with torch.no_grad():
                for _, b in validation_batches({"s": w}):
                    key, _ = outputs(model, b)
                    e_in.append(float((b.inputs[:, 1] - b.key).square().mean()))
                    e_out.append(float((key.clamp(0, 1) - b.key).square().mean()))
            a, o = (10 * math.log10(len(e) / sum(e)) for e in (e_in, e_out))
            parts.append(f"{name}: {a:.2f} -> {o:.2f} ({o - a:+.2f})")
        print(f"{spec or 'default'}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
