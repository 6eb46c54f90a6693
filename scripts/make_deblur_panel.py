"""A before | after panel of real blurry frames in deblur mode (the README's and model card's figure).

    python scripts/make_deblur_panel.py --weights FILE [--frames ../shared/data/adobe240_blurry]
        [--out docs/deblur_panel.png]

The frames go through the same run path as ``vidrestore enhance --mode deblur`` (``enhance_frames``); the
panel shows the middle frame, whole, before and after, with a 2x crop of where the output differs most.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import vidrestore
from vidrestore.evaluate.panels import compose, pick_crop, save_panel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--frames", type=Path, default=here.parent / "shared" / "data" / "adobe240_blurry")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", type=Path, default=here / "docs" / "deblur_panel.png")
    ap.add_argument("--crop", type=int, default=160)
    args = ap.parse_args()
    paths = sorted(args.frames.glob("*.png"))
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    out = list(vidrestore.enhance_frames(frames, fps_x=1, mode="deblur", weights=args.weights, device="cpu"))
    mid = len(frames) // 2
    before, after = frames[mid], out[mid]
    h, w = before.shape[:2]
    whole = compose([(f"blurry input ({paths[mid].name})", before), ("vidrestore --mode deblur", after)], (0, 0, h, w))
    y, x, ch, cw = pick_crop(after, before, args.crop)
    zoom = [(label, cv2.resize(img[y:y + ch, x:x + cw], (2 * cw, 2 * ch), interpolation=cv2.INTER_NEAREST))
            for label, img in (("input, 2x crop", before), ("output, 2x crop", after))]
    crops = compose(zoom, (0, 0, 2 * ch, 2 * cw))
    pad = np.full((crops.shape[0], max(0, whole.shape[1] - crops.shape[1]), 3), 255, np.uint8)
    save_panel(args.out, np.concatenate([whole, np.concatenate([crops, pad], axis=1)[:, :whole.shape[1]]], axis=0))
    diff = np.abs(after.astype(np.float32) - before).mean()
    print(f"{args.out}: mean change {diff:.2f} code values on the middle frame")


if __name__ == "__main__":
    main()
