#!/usr/bin/env python
"""Cut the README's example clip: the first ~2 s of a shared real clip, downscaled, with its audio.

    python scripts/make_example_clip.py [--src ../shared/data/clips/01_dog.mp4]
        [--out src/vidrestore/assets/example.mp4] [--seconds 2] [--width 640] [--height 360]

Video: decoded, downscaled with area averaging, re-encoded with libx264 (CRF 20, preset slow,
yuv420p), same frame rate (30000/1001) and time stamps, BT.709 tags kept. Audio: the AAC packets
of the first ``--seconds`` are copied unchanged (no re-encode). The data (timecode) stream is
left out. Fails if the result is larger than ``--max-bytes``.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_clip(src: Path, out: Path, seconds: float, width: int, height: int, crf: int = 20) -> dict:
    import av

    tmp = out.with_name(f".{out.name}.partial{out.suffix}")
    with av.open(str(src)) as inp, av.open(str(tmp), "w", options={"movflags": "faststart"}) as dst:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        vin.thread_type = "AUTO"
        rate = Fraction(vin.base_rate or vin.average_rate)
        tb = Fraction(vin.time_base)
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.time_base = tb
        cc = vout.codec_context
        cc.time_base = tb
        cc.options = {"crf": str(crf), "preset": "slow"}
        src_cc = vin.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = (
            src_cc.color_primaries, src_cc.color_trc, src_cc.colorspace, src_cc.color_range)
        vout.metadata["language"] = "und"
        aout = dst.add_stream_from_template(ain) if ain is not None else None
        if aout is not None:
            aout.metadata["language"] = ain.metadata.get("language", "und")
        dst.metadata["title"] = "vidrestore example (from facebookresearch/sam2 demo gallery, Apache-2.0)"
        limit = Fraction(seconds)
        frames = 0
        for frame in inp.decode(vin):
            if frame.pts is None or (frame.pts - (vin.start_time or 0)) * tb >= limit:
                break
            small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
            small.pts, small.time_base = frame.pts, tb
            for p in vout.encode(small):
                dst.mux(p)
            frames += 1
        for p in vout.encode():
            dst.mux(p)
        audio_packets = 0
        if ain is not None:
            inp.seek(0)
            for pk in inp.demux(ain):
                if pk.dts is None or pk.size == 0:
                    continue
                if pk.pts * pk.time_base >= limit:
                    break
                pk.stream = aout
                dst.mux(pk)
                audio_packets += 1
    tmp.replace(out)
    return {"frames": frames, "rate": rate, "audio_packets": audio_packets, "bytes": out.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path("../shared/data/clips/01_dog.mp4"))
    ap.add_argument("--out", type=Path, default=ROOT / "src/vidrestore/assets/example.mp4")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--max-bytes", type=int, default=2 * 1024 * 1024)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    info = make_clip(args.src, args.out, args.seconds, args.width, args.height, args.crf)
    print(f"{args.out}: {info['frames']} frames at {info['rate']} fps, {info['audio_packets']} audio packets, "
          f"{info['bytes'] / 1e6:.2f} MB")
    if info["bytes"] > args.max_bytes:
        args.out.unlink()
        raise SystemExit(f"too large ({info['bytes']} bytes > {args.max_bytes}); raise --crf or lower the size")


if __name__ == "__main__":
    main()
