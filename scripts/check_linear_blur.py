"""Deblurring of camera motion on real frames: a held-out frame blurred by a straight line of camera motion,
given as a static 5-frame video in deblur mode; PSNR of the middle output frame against the sharp frame, and of
the blurred input.

    python scripts/check_linear_blur.py [--weights W] [--length 16] [--json]

Frames: 0, 40 and 80 of each clip of ../shared/data/clips (the first 96 frames, held out of training), at
640x360; motion at 0, 45, 90 and 135 degrees. The blur is the frame averaged along the line (a kernel drawn
at 8x and averaged down), borders replicated, then rounded to 8 bits, as decoded video is.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "clips"


def line_kernel(length: float, degrees: float, supersample: int = 8) -> np.ndarray:
    """A normalised kernel: a line of ``length`` pixels at ``degrees``."""
    size = int(math.ceil(length)) // 2 * 2 + 3
    big = np.zeros((size * supersample, size * supersample), np.float32)
    c = (size * supersample - 1) / 2
    dx = math.cos(math.radians(degrees)) * length * supersample / 2
    dy = -math.sin(math.radians(degrees)) * length * supersample / 2
    cv2.line(big, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, thickness=supersample)
    k = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    return k / k.sum()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


def frames_of(path: Path, indices: list[int], size: tuple[int, int]) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in indices:
                rgb = frame.to_ndarray(format="rgb24")
                out.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
            if i >= max(indices):
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--length", type=float, default=16.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import vidrestore
    from vidrestore import threads

    threads.apply(args.threads)

    model = vidrestore.load_model(args.weights, device="cpu")
    rows = []
    for clip in sorted(CLIPS.glob("*.mp4")):
        for index, sharp in zip((0, 40, 80), frames_of(clip, [0, 40, 80], (640, 360))):
            for deg in (0, 45, 90, 135):
                k = line_kernel(args.length, deg)
                soft = cv2.filter2D(sharp.astype(np.float32), -1, k, borderType=cv2.BORDER_REPLICATE)
                blurred = np.clip(np.rint(soft), 0, 255).astype(np.uint8)
                out = list(vidrestore.enhance_frames([blurred] * 5, mode="deblur", model=model, device="cpu"))
                rows.append({"clip": clip.name, "frame": index, "degrees": deg, "input": psnr(blurred, sharp),
                             "model": psnr(out[2], sharp)})
    summary = {"length": args.length, "count": len(rows), "input": float(np.mean([r["input"] for r in rows])),
               "model": float(np.mean([r["model"] for r in rows])), "weights": args.weights or "default"}
    summary["gain"] = summary["model"] - summary["input"]
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, indent=1))
    else:
        print(f"{summary['count']} frames, {args.length:g} px linear blur: input {summary['input']:.2f} dB, "
              f"model {summary['model']:.2f} dB ({summary['gain']:+.2f})")


if __name__ == "__main__":
    main()
