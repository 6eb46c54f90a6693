"""Small videos whole, in and out: the one encode helper and the one decoder that the bench, the scripts, the
training data and the tests use. A run's own streaming reader and writer are :mod:`.reader` and
:mod:`.writer`; these hold every frame in memory, for clips of a few hundred frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import numpy as np

from vidrestore.errors import InputError

AUDIO_RATE = 48000


def write_video(path: str | Path, frames: Iterable[np.ndarray], rate: Fraction | int, *, codec: str = "libx264",
                pix_fmt: str = "yuv420p", crf: int | None = None, preset: str | None = None, gop: int | None = None,
                time_base: Fraction | None = None, pts: list[int] | None = None,
                container_options: dict[str, str] | None = None, reformat: dict | None = None,
                configure: Callable[[av.video.stream.VideoStream], None] | None = None,
                audio: bool = False) -> Path:
    """Encode HxWx3 RGB frames (uint8, or uint16 for 16 bits) at ``rate`` into ``path``.

    ``time_base`` and ``pts`` place the frames (default: 1/rate, one tick per frame); ``crf``, ``preset`` and
    ``gop`` are the encoder's; ``reformat`` passes colour arguments to the conversion into ``pix_fmt``;
    ``configure`` sets anything else on the video stream before the first frame; ``audio`` adds a stereo AAC
    440 Hz tone as long as the video."""
    rate = Fraction(rate)
    tb = time_base or 1 / rate
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("write_video: no frames")
    with av.open(str(path), "w", options=container_options or {}) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = first.shape[1], first.shape[0], pix_fmt
        vs.time_base = vs.codec_context.time_base = tb
        opts = {"crf": str(crf)} if crf is not None else {}
        opts.update({"preset": preset} if preset else {})
        if gop:
            if codec in ("libx264", "libx265"):
                opts.update({"g": str(gop), "keyint_min": str(gop)})
            else:
                vs.codec_context.gop_size = gop
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        vs.codec_context.options = opts
        if configure is not None:
            configure(vs)
        aus = None
        if audio:  # every stream is added before the first packet is written
            aus = out.add_stream("aac", rate=AUDIO_RATE)
            aus.layout = "stereo"
            aus.metadata["language"] = "eng"
        step = 1 / (rate * tb)
        n = 0
        for n, img in enumerate(_chain(first, frames)):
            fmt = "rgb48le" if img.dtype == np.uint16 else "rgb24"
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
            if pix_fmt != fmt:
                f = f.reformat(format=pix_fmt, **(reformat or {}))
            f.pts, f.time_base = (pts[n] if pts is not None else int(n * step)), tb
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if aus is not None:
            end = (pts[-1] + (pts[-1] - pts[-2])) if pts is not None and len(pts) > 1 else int((n + 1) * step)
            _tone(out, aus, float(end * tb))
    return Path(path)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _tone(out: av.container.OutputContainer, aus: av.audio.stream.AudioStream, seconds: float) -> None:
    """A 440 Hz tone of ``seconds`` into the stereo AAC stream ``aus``."""
    total, t = int(round(seconds * AUDIO_RATE)), 0
    while t < total:
        m = min(1024, total - t)
        s = (0.3 * np.sin(2 * np.pi * 440 * np.arange(t, t + m) / AUDIO_RATE)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(np.stack([s, s]), format="fltp", layout="stereo")
        af.sample_rate, af.pts = AUDIO_RATE, t
        for p in aus.encode(af):
            out.mux(p)
        t += m
    for p in aus.encode():
        out.mux(p)


def video_frames(path: str | Path) -> Iterator[av.VideoFrame]:
    """The decoded frames of ``path``'s first video stream, in order (threaded decoding)."""
    try:
        container = av.open(str(path))
    except Exception as err:  # av raises several error types for unreadable files
        raise InputError(f"cannot open video {path}: {err}") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)


def video_rate(path: str | Path) -> Fraction:
    """The average frame rate of ``path``'s first video stream (30 where it says none)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return Fraction(s.average_rate or s.guessed_rate or 30)


def decode_video(path: str | Path, *, scale: float | None = None, max_side: int | None = None,
                 size: tuple[int, int] | None = None, max_frames: int | None = None, keep_every: int | None = None,
                 sample_count: int | None = None, skip_frames: int = 0) -> np.ndarray:
    """A video's first video stream as uint8 RGB frames [N, H, W, 3].

    ``size`` (width, height), else ``scale`` times the size, else ``max_side`` for the longer side (no
    upscaling); area-resampled, even sizes. ``keep_every`` keeps every k-th frame; ``sample_count`` about that
    many frames spread over the whole video; ``max_frames`` stops after that many kept frames; ``skip_frames``
    drops the first frames before anything else (a held-out part, e.g. the frames an evaluation scores). A
    file corrupt part-way gives the frames decoded before the damage."""
    path = Path(path)
    step = keep_every or 1
    if sample_count:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            total = s.frames or 0
            if total <= 0 and s.duration and s.average_rate:
                total = int(s.duration * s.time_base * s.average_rate)
        total -= skip_frames
        step = max(1, total // sample_count) if total > 0 else 1
        max_frames = sample_count if max_frames is None else min(max_frames, sample_count)
    frames: list[np.ndarray] = []
    wh: tuple[int, int] | None = size
    try:
        for n, frame in enumerate(video_frames(path)):
            if n < skip_frames or (n - skip_frames) % step:
                continue
            if wh is None:
                s = float(scale) if scale is not None else (
                    min(1.0, max_side / max(frame.width, frame.height)) if max_side is not None else 1.0)
                wh = (max(2, int(round(frame.width * s)) // 2 * 2), max(2, int(round(frame.height * s)) // 2 * 2))
            if (frame.width, frame.height) != wh:
                frame = frame.reformat(width=wh[0], height=wh[1], format="rgb24", interpolation="AREA")
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    except InputError:
        raise
    except Exception as err:  # corrupt part-way: keep what decoded, if anything
        if not frames:
            raise InputError(f"cannot decode video {path}: {err}") from None
    if not frames:
        raise InputError(f"{path}: no frames decoded" + (f" after the first {skip_frames}" if skip_frames else ""))
    return np.stack(frames)
