#!/usr/bin/env python
"""Cut and scale short clips from ../shared/data/clips for ``vidrestore eval`` on real footage.

    python scripts/cut_clips.py --out eval_clips --frames 120 --size 640x360
    vidrestore eval eval_clips --protocol interp --stride 2

Writes one file per source clip (video only, no audio): H.264 in MP4 (``--format mp4``, near-lossless
CRF 10, yuv444p) or a folder of PNG frames per clip (``--format png``, lossless). ``vidrestore eval``
accepts a folder of either. The scaled frames are the ground truth, so what matters is that every
method is scored against the same decoded frames, not that they equal the original clip.

``--pan DX,DY``: instead of the clip's frames, its frame ``--start`` as a camera pan of DX, DY pixels per frame
(every pixel moves alike; borders reflected): camera motion alone, where the clips' own motion is mostly that of
objects (what deblurring of the one and the other gains: ``scripts/release_eval.sh``, part (g)).
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "data" / "clips"
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"{text}: need even width and height of at least 16")
    return w, h


def read_frames(path: Path, start: int, count: int, size: tuple[int, int]) -> tuple[list[np.ndarray], Fraction]:
    import cv2

    from vidrestore.io.clips import decode_video, video_rate

    frames = decode_video(path, skip_frames=start, max_frames=count)
    return [cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) for rgb in frames], video_rate(path)


def write_mp4(path: Path, frames: list[np.ndarray], rate: Fraction) -> None:
    from vidrestore.io.clips import write_video

    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    write_video(tmp, frames, rate, pix_fmt="yuv444p", crf=10, preset="medium")
    tmp.replace(path)


def pan_frames(frame: np.ndarray, count: int, dx: float, dy: float) -> list[np.ndarray]:
    """``count`` views of ``frame`` moving by (dx, dy) pixels per frame, centred on the middle view."""
    import cv2

    h, w = frame.shape[:2]
    out = []
    for i in range(count):
        t = i - (count - 1) / 2
        m = np.float32([[1, 0, -dx * t], [0, 1, -dy * t]])
        out.append(cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return out


def parse_pan(text: str) -> tuple[float, float]:
    try:
        dx, dy = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: need DX,DY (pixels per frame)") from None
    return dx, dy


def write_png(folder: Path, frames: list[np.ndarray]) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, arr in enumerate(frames):
        if not cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {folder / f'{i:05d}.png'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help=f"folder of source clips [{DEFAULT_SRC}]")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--frames", type=int, default=120, help="frames per clip [120]")
    ap.add_argument("--start", type=int, default=0, help="first frame [0]")
    ap.add_argument("--size", type=parse_size, default=(640, 360), help="WxH [640x360]")
    ap.add_argument("--format", choices=("mp4", "png"), default="mp4")
    ap.add_argument("--pan", type=parse_pan, default=None, metavar="DX,DY",
                    help="frame --start panned by DX,DY pixels per frame instead of the clip's frames")
    args = ap.parse_args(argv)
    if args.frames < 2:
        ap.error("--frames must be at least 2")
    clips = sorted(p for p in args.src.iterdir() if p.suffix.lower() in VIDEO_EXTS) if args.src.is_dir() else []
    if not clips:
        print(f"cut_clips: no videos in {args.src}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        frames, rate = read_frames(clip, args.start, 1 if args.pan else args.frames, args.size)
        if args.pan and frames:
            frames = pan_frames(frames[0], args.frames, *args.pan)
        if len(frames) < 2:
            print(f"cut_clips: {clip.name}: only {len(frames)} frame(s) after --start, skipped", file=sys.stderr)
            continue
        if args.format == "mp4":
            dest = args.out / f"{clip.stem}.mp4"
            write_mp4(dest, frames, rate)
        else:
            dest = args.out / clip.stem
            write_png(dest, frames)
        print(f"{dest}: {len(frames)} frames {args.size[0]}x{args.size[1]} at {float(rate):.3f} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
