#!/usr/bin/env python
"""Maintainer tool: cut the pinned 1280x720 test clip and record the reference decoded outputs.

    python scripts/make_pin_assets.py cut        # tests/assets/cups_720p_4f.mp4 from ../shared/data/clips
    python scripts/make_pin_assets.py record     # tests/assets/pinned_outputs.npz from the current code

The record is what ``tests/test_pinned_outputs.py`` compares against: ``enhance``'s output with the bundled
default weights (``vidrestore.weights.DEFAULT_WEIGHTS``), per output frame the sha256 of the decoded planes and
every 8th row and column of them (a fixed sample for the tolerance check). Run ``record`` only on purpose, when a
change of output is intended and explained: in particular again whenever the bundled default weights change.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidrestore.io.clips import decode_video, video_frames, write_video

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
CLIP = ASSETS / "cups_720p_4f.mp4"
EXAMPLE = REPO / "src" / "vidrestore" / "assets" / "example.mp4"
RECORD = ASSETS / "pinned_outputs.npz"
# (name, input, extra enhance arguments)
CASES = (
    ("example_joint_2x", EXAMPLE, ["--fps-x", "2", "--mode", "joint"]),
    ("cups720_joint_4x", CLIP, ["--fps-x", "4", "--mode", "joint"]),
)
STRIDE = 8


def cut(src: Path, frames: int = 4) -> None:
    write_video(CLIP, decode_video(src, max_frames=frames), Fraction(30000, 1001), crf=14, preset="medium")


def decoded_planes(path: Path) -> list[list[np.ndarray]]:
    """Every decoded frame of ``path`` as its planes (uint8/uint16 arrays), in order."""
    out = []
    for frame in video_frames(path):
        planes = []
        for i, plane in enumerate(frame.planes):
            w = frame.width if i == 0 else -(-frame.width // 2)
            h = frame.height if i == 0 else -(-frame.height // 2)
            buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            planes.append(buf[:h, :w].copy())
        out.append(planes)
    return out


def run_enhance(src: Path, args: list[str], dst: Path) -> None:
    exe = Path(sys.executable).with_name("vidrestore")
    subprocess.run([str(exe), "enhance", str(src), "-o", str(dst), "--codec", "ffv1", "-q", *args], check=True)


def fingerprint(frames: list[list[np.ndarray]]) -> tuple[np.ndarray, list[np.ndarray]]:
    hashes = np.array([hashlib.sha256(b"".join(p.tobytes() for p in f)).hexdigest() for f in frames])
    samples = [np.concatenate([p[::STRIDE, ::STRIDE].ravel() for p in f]) for f in frames]
    return hashes, samples


def record() -> None:
    data = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, src, args in CASES:
            dst = Path(tmp) / f"{name}.mkv"
            run_enhance(src, args, dst)
            hashes, samples = fingerprint(decoded_planes(dst))
            data[f"{name}/sha256"] = hashes
            data[f"{name}/samples"] = np.stack(samples)
            print(name, len(hashes), "frames")
    np.savez_compressed(RECORD, **data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("cut", "record"))
    ap.add_argument("--src", type=Path, default=REPO.parent / "shared" / "data" / "clips" / "02_cups.mp4")
    a = ap.parse_args()
    cut(a.src) if a.what == "cut" else record()


if __name__ == "__main__":
    main()
