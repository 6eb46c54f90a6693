#!/usr/bin/env python
"""Maintainer tool: cut the real test frames and the short real clip in ``tests/assets/`` from the
project's shared data (``../shared/data``), so that the tests run on a clone with nothing beside it.

    python scripts/make_test_assets.py [--data ../shared/data]

Writes (see ``tests/assets/README.md`` for sources and licences):

- ``tests/assets/reds_000/00000000.png`` .. ``00000009.png``: the first 10 REDS frames, pixel for pixel;
- ``tests/assets/clips/{clip}_{W}x{H}.png``: the first 6 frames of each shared clip, area-downscaled to
  W x H exactly as ``tests/conftest.py``'s ``real_frames`` did from the full clip, stacked top to bottom;
- ``tests/assets/clips/01_dog.mp4``: the first 0.4 s of ``01_dog.mp4`` with all three streams (H.264
  video re-encoded at 320x180, the AAC audio copied, the
  timecode data stream written anew by the MP4 muxer from the video's timecode tag).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
REDS_FRAMES = 10
CLIP_NAMES = ("01_dog.mp4", "02_cups.mp4", "03_blocks.mp4")
CLIP_SIZES = ((96, 54), (56, 40), (48, 32))
CLIP_FRAMES = 6
CUT_SECONDS = 0.4


def reds(data: Path) -> None:
    out = ASSETS / "reds_000"
    out.mkdir(parents=True, exist_ok=True)
    for i in range(REDS_FRAMES):
        shutil.copyfile(data / "reds_000" / f"{i:08d}.png", out / f"{i:08d}.png")


def strips(data: Path) -> None:
    out = ASSETS / "clips"
    out.mkdir(parents=True, exist_ok=True)
    for name in CLIP_NAMES:
        for w, h in CLIP_SIZES:
            frames = []
            with av.open(str(data / "clips" / name)) as c:
                for f in c.decode(video=0):
                    frames.append(f.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA"))
                    if len(frames) == CLIP_FRAMES:
                        break
            strip = np.concatenate(frames, axis=0)
            path = out / f"{Path(name).stem}_{w}x{h}.png"
            cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def cut(data: Path, name: str = "01_dog.mp4", size: tuple[int, int] = (320, 180)) -> None:
    src, dst = data / "clips" / name, ASSETS / "clips" / name
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = *size, "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.options = {"crf": "20"}
        vout.metadata.update(vin.metadata)
        # the audio as is; the MP4 muxer writes the timecode track itself from the video's timecode tag
        copied = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type == "audio"}
        for s in inp.streams:
            if s.index in copied:
                copied[s.index].metadata.update(s.metadata)
        for pk in inp.demux():
            if pk.dts is None or pk.stream.type == "data" or float(pk.pts * pk.time_base) >= CUT_SECONDS:
                continue
            if pk.stream.type == "video":
                for f in pk.decode():
                    g = f.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="AREA")
                    g.pts, g.time_base = f.pts, f.time_base
                    for q in vout.encode(g):
                        out.mux(q)
            else:
                pk.stream = copied[pk.stream.index]
                out.mux(pk)
        for q in vout.encode():
            out.mux(q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    reds(args.data)
    strips(args.data)
    cut(args.data)
    for p in sorted(ASSETS.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>9}  {p.relative_to(REPO)}")


if __name__ == "__main__":
    main()
