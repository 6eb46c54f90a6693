"""Format policy, decided before anything is written: is the output path usable, which muxer its
extension means, whether the codec and preset exist and fit it, which pixel format the codec
gets, the codecs' default settings, and the colour tags (so the RGB->YUV matrix) of the output.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from vidrestore.config import CONTAINER_CODECS, DEFAULT_CODEC
from vidrestore.errors import OutputError, UsageError
from vidrestore.io.probe import ColourInfo


@dataclass(frozen=True)
class CodecDefaults:
    quality_option: str | None  # the encoder option --crf maps to
    quality: int | None  # default value for it
    preset: str | None  # default --preset
    extra: tuple[tuple[str, str], ...] = ()
    odd_sizes_with_subsampling: bool = False  # can it encode 4:2:0 with odd width/height?


CODEC_DEFAULTS: dict[str, CodecDefaults] = {
    "libx264": CodecDefaults("crf", 18, "medium"),
    "libx265": CodecDefaults("crf", 20, "medium", (("x265-params", "log-level=error"),)),
    "libsvtav1": CodecDefaults("crf", 30, "8"),
    "ffv1": CodecDefaults(None, None, None, (("level", "3"), ("slicecrc", "1")), odd_sizes_with_subsampling=True),
    "h264_nvenc": CodecDefaults("cq", 19, "p5", (("rc", "vbr"),)),
    "hevc_nvenc": CodecDefaults("cq", 21, "p5", (("rc", "vbr"),)),
    # row-mt and cpu-used 4: libvpx's own defaults (one row thread, cpu-used 0) encode at a few frames a second
    "libvpx-vp9": CodecDefaults("crf", 31, None, (("b", "0"), ("row-mt", "1"), ("cpu-used", "4"))),
    "libaom-av1": CodecDefaults("crf", 32, None, (("b", "0"), ("row-mt", "1"), ("cpu-used", "6"))),
}
_NO_DEFAULTS = CodecDefaults(None, None, None)


def codec_defaults(codec: str) -> CodecDefaults:
    """The codec's entry in CODEC_DEFAULTS; no settings of our own for any other codec."""
    return CODEC_DEFAULTS.get(codec, _NO_DEFAULTS)


def has_encoder(codec: str) -> bool:
    try:
        return av.codec.Codec(codec, "w").type == "video"
    except Exception:
        return False


def _max_depth(codec: str) -> int:
    return max(((_fmt_props(f.name) or {}).get("depth", 8) for f in av.codec.Codec(codec, "w").video_formats or []),
               default=8)


def default_codec(format_name: str, bit_depth: int = 8) -> str:
    """``--codec`` when none is given: the container's default (``config.CONTAINER_CODECS``; the first
    one this FFmpeg has; for input beyond 8 bits the first that keeps them), else libx264.

    WebM: libsvtav1 (AV1, 8 and 10 bits, fast at its default preset), else libvpx-vp9 (VP9; 10-bit
    profile 2 where this libvpx has high bit depth), else libaom-av1."""
    candidates = CONTAINER_CODECS.get(format_name, (DEFAULT_CODEC,))
    available = [c for c in candidates if has_encoder(c)]
    if not available:
        return candidates[0]  # check_codec says it is missing
    if bit_depth > 8:
        for c in available:
            if c not in _EIGHT_BIT_DEFAULT and _max_depth(c) > 8:
                return c
    return available[0]


def check_target(target: Path, source: Path, overwrite: bool) -> None:
    """Output path checks: not the input, not existing (unless overwrite), directory writable."""
    target = Path(target)
    try:
        same = target.exists() and source.exists() and os.path.samefile(target, source)
    except OSError:
        same = False
    if same or target.resolve() == Path(source).resolve():
        raise UsageError(f"output is the same file as the input: {target}")
    if target.is_dir():
        raise OutputError(f"output is a directory: {target}")
    if target.exists() and not overwrite:
        raise OutputError(f"output exists: {target} (use --overwrite to replace it)")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise OutputError(f"output directory is not a directory: {parent}")


def container_format_for(target: Path) -> str:
    """The FFmpeg muxer for ``target``'s extension; UsageError for an unknown one."""
    try:
        c = av.open(str(target), mode="w")  # opens no file until the header is written
    except ValueError:
        raise UsageError(f"unknown output container for {target.name!r}: use .mp4, .mkv, .mov, .webm, ...") from None
    except av.error.FFmpegError as err:
        raise UsageError(f"cannot write a container for {target.name!r}: {err}") from None
    try:
        return c.format.name
    finally:
        c.close()


def check_codec(codec: str, format_name: str) -> None:
    """``codec`` must be a video encoder of the local FFmpeg that ``format_name`` can hold."""
    try:
        c = av.codec.Codec(codec, "w")
    except Exception:
        raise UsageError(f"unknown codec {codec!r}: not a video encoder in this FFmpeg build "
                         f"(try libx264, libx265, libsvtav1 or ffv1)") from None
    if c.type != "video":
        raise UsageError(f"--codec {codec!r} is a {c.type} encoder, not a video encoder")
    probe_io = io.BytesIO()
    out = av.open(probe_io, mode="w", format=format_name)
    try:
        out.add_stream(codec)
    except ValueError:
        raise UsageError(f"the {format_name} container cannot hold {codec} video; pick another --codec "
                         f"or output extension") from None
    finally:
        out.close()


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")
_NVENC_PRESETS = tuple(f"p{i}" for i in range(1, 8)) + ("default", "slow", "medium", "fast", "hp", "hq", "bd", "ll",
                                                         "llhq", "llhp", "lossless", "losslesshp")
PRESETS: dict[str, tuple[str, ...]] = {
    "libx264": _X26X_PRESETS,
    "libx265": _X26X_PRESETS,
    "libsvtav1": tuple(str(i) for i in range(-2, 14)),
    "h264_nvenc": _NVENC_PRESETS,
    "hevc_nvenc": _NVENC_PRESETS,
}


def check_preset(codec: str, preset: str | None) -> None:
    """Known codecs: --preset must be one of theirs (others are left to the encoder to judge)."""
    if preset is None:
        return
    if codec == "ffv1":
        raise UsageError("--preset: ffv1 has no presets")
    allowed = PRESETS.get(codec)
    if allowed is not None and str(preset) not in allowed:
        raise UsageError(f"--preset {preset!r} is not a {codec} preset: choose from {', '.join(allowed)}")


def _fmt_props(name: str) -> dict[str, Any] | None:
    try:
        f = av.VideoFormat(name)
    except Exception:
        return None
    if f.is_bit_stream or f.has_palette or f.is_bayer or name in ("cuda", "vaapi", "qsv", "d3d11", "videotoolbox_vld"):
        return None
    comps = f.components
    colour_comps = [c for c in comps if not c.is_alpha]
    return {
        "rgb": bool(f.is_rgb),
        "gray": len(colour_comps) == 1,
        "depth": max(c.bits for c in comps) if comps else 8,
        "alpha": any(c.is_alpha for c in comps),
        "sub_w": f.chroma_width(64) < 64 and not f.is_rgb and len(colour_comps) > 1,
        "sub_h": f.chroma_height(64) < 64 and not f.is_rgb and len(colour_comps) > 1,
        "planar": bool(f.is_planar),
        "big_endian": bool(f.is_big_endian),
    }


def normalize_source_format(pix_fmt: str) -> tuple[str, bool]:
    """``yuvj*`` (deprecated full-range formats) -> (``yuv*``, True)."""
    if pix_fmt.startswith("yuvj"):
        return "yuv" + pix_fmt[4:], True
    return pix_fmt, False


def choose_pix_fmt(source_fmt: str, codec: str, width: int, height: int, max_depth: int | None = None) -> str:
    """The codec's pixel format closest to the source's: the same one where the codec allows,
    else the nearest in family (RGB/YUV/grey), bit depth (never lower if avoidable, never over
    ``max_depth``) and chroma subsampling. Odd sizes with chroma subsampling are avoided for codecs
    that reject them."""
    source_fmt, _ = normalize_source_format(source_fmt)
    formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])]
    if max_depth is not None:
        formats = [f for f in formats if (_fmt_props(f) or {}).get("depth", 99) <= max_depth]
    defaults = codec_defaults(codec)
    src = _fmt_props(source_fmt) or _fmt_props("yuv420p")
    assert src is not None
    odd_w, odd_h = width % 2 == 1, height % 2 == 1

    def size_ok(p: dict[str, Any]) -> bool:
        if defaults.odd_sizes_with_subsampling:
            return True
        return not ((odd_w and p["sub_w"]) or (odd_h and p["sub_h"]))

    if not formats:
        return source_fmt
    if source_fmt in formats:
        p = _fmt_props(source_fmt)
        if p is not None and size_ok(p):
            return source_fmt
    best: tuple[float, int, str] | None = None
    for order, name in enumerate(formats):
        p = _fmt_props(name)
        if p is None or not size_ok(p):
            continue
        score = 0.0
        score += 100 if p["rgb"] != src["rgb"] else 0
        score += 50 if p["gray"] != src["gray"] else 0
        if p["depth"] < src["depth"]:
            score += 20 + (src["depth"] - p["depth"])
        else:
            score += (p["depth"] - src["depth"]) * 2
        score += 8 * (abs(int(p["sub_w"]) - int(src["sub_w"])) + abs(int(p["sub_h"]) - int(src["sub_h"])))
        score += 3 if p["alpha"] != src["alpha"] else 0
        score += 0.5 if not p["planar"] else 0
        score += 1 if p["big_endian"] else 0
        if best is None or (score, order) < best[:2]:
            best = (score, order, name)
    if best is None:
        raise UsageError(f"{codec} cannot encode a {width}x{height} frame (odd sizes need a codec "
                         f"without chroma subsampling limits, e.g. --codec libx264 or ffv1)")
    return best[2]


@dataclass(frozen=True)
class Picture:
    """What the encoder gets: pixel format and size (the source's, or padded to even), and why."""

    pix_fmt: str
    width: int
    height: int
    notes: tuple[str, ...] = ()


# codecs whose deeper profiles few players decode: beyond 8 bits they get 8 bits and a note
_EIGHT_BIT_DEFAULT = {"libx264": "H.264 High 10 plays in few browsers and players"}


def choose_picture(source_fmt: str, codec: str, width: int, height: int) -> Picture:
    """The pixel format and size to encode, by what players accept:

    * a subsampled source (4:2:0, 4:2:2) with an odd size keeps its subsampling: for a codec that
      cannot encode odd sizes so (libx264, libx265, ...) the frames are padded to even by repeating
      the last column/row, and a note says so (H.264 and HEVC can crop only in 2-pixel steps in
      4:2:0, so the exact odd size cannot be stored; 4:4:4 instead would need the rarely supported
      High 4:4:4 profile);
    * with libx264, input beyond 8 bits is encoded in 8 bits (H.264 High 10 plays almost nowhere),
      with a note pointing to --codec libx265 (HEVC Main 10) to keep the bits.
    """
    src_fmt, _ = normalize_source_format(source_fmt)
    src = _fmt_props(src_fmt) or _fmt_props("yuv420p")
    assert src is not None
    notes: list[str] = []
    w, h = width, height
    if not codec_defaults(codec).odd_sizes_with_subsampling:
        w += width % 2 if src["sub_w"] else 0
        h += height % 2 if src["sub_h"] else 0
    if (w, h) != (width, height):
        notes.append(f"encoded at {w}x{h}: the {width}x{height} frames are padded by repeating the last "
                     f"{'column' if w != width else 'row'}{' and row' if w != width and h != height else ''}, "
                     f"because {codec} cannot store an odd size with {src_fmt} chroma subsampling")
    max_depth = 8 if codec in _EIGHT_BIT_DEFAULT and src["depth"] > 8 else None
    pix_fmt = choose_pix_fmt(src_fmt, codec, w, h, max_depth=max_depth)
    if max_depth is not None:
        notes.append(f"{src['depth']}-bit input encoded as 8-bit {pix_fmt}: {_EIGHT_BIT_DEFAULT[codec]}; "
                     f"--codec libx265 keeps {src['depth']} bits (HEVC Main 10, tagged hvc1 in MP4/MOV)")
    return Picture(pix_fmt, w, h, tuple(notes))


# MP4/MOV muxers: the sample entry players expect for these codecs (FFmpeg writes hev1 by default;
# Apple players and browsers play only hvc1)
_MP4_CODEC_TAGS = {"libx265": "hvc1", "hevc_nvenc": "hvc1", "hevc_qsv": "hvc1", "hevc_vaapi": "hvc1"}
_MP4_MUXERS = ("mp4", "mov", "ipod", "ismv")


def codec_tag_for(codec: str, format_name: str) -> str | None:
    """The codec tag to set on the output video stream, or None for the muxer's default."""
    return _MP4_CODEC_TAGS.get(codec) if format_name in _MP4_MUXERS else None


def output_colour(colour: ColourInfo, pix_fmt: str, full_range_source: bool) -> ColourInfo:
    """Colour tags of the output and, through them, the RGB->YUV matrix and range used."""
    c = colour
    out_rgb = (_fmt_props(pix_fmt) or {}).get("rgb", False)
    rng = 2 if full_range_source else c.range
    if out_rgb:
        return ColourInfo(c.primaries, c.transfer, 0, rng if rng else 2)
    if c.matrix == 0:  # RGB source into a YUV format: tag (and convert with) BT.709, limited
        return ColourInfo(c.primaries, c.transfer, 1, 1)
    return ColourInfo(c.primaries, c.transfer, c.matrix, rng)
