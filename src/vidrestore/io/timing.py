"""Is the input constant-rate, and on which grid do the output timestamps go?

A container stores timestamps in its own time base: Matroska and WebM in milliseconds, so a
30000/1001 fps stream has steps of 33 and 34 ms. The input counts as constant-rate (CFR) at a
nominal rate r (the stream's declared rate, else its average) when every frame's timestamp is
within one tick of ``start + j / r``. Then output frame n of a K-times job is at exactly
``start + n / (K r)`` on a time base that holds both that step and the start time, whatever the
input's time-base precision. Anything else is variable-rate (VFR) and the output follows the
input's own timestamps (see :mod:`vidrestore.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from pathlib import Path

import av
import av.logging

from vidrestore.io.probe import open_input

_MAX_TIME_BASE_DEN = 2**31 - 1
# Matroska stores a frame duration in whole nanoseconds, so FFmpeg reads 60000/1001 back as
# 19001/317: a declared rate this close to a standard one is taken to be that one
_STANDARD_RATES = tuple(Fraction(n, 1001) for n in (24000, 30000, 48000, 60000, 120000, 240000)) + tuple(
    Fraction(n) for n in (12, 15, 24, 25, 30, 48, 50, 60, 72, 90, 100, 120, 144, 240))
_SNAP = 1e-6


# missing frames in one place that a recording does not drop by itself (a variable-rate source drops one
# or two at a time)
GAP_FRAMES = 5


@dataclass(frozen=True)
class Gap:
    """Frames missing from a constant-rate stream: the timestamps jump from ``before`` to ``after``
    (seconds) where ``missing`` frames at the nominal rate should be."""

    before: Fraction
    after: Fraction
    missing: int


@dataclass(frozen=True)
class InputTiming:
    """The constant rate of the input (None for VFR) and the first frame's time in seconds. ``gaps``: a
    stream whose every timestamp lies on a constant-rate grid, but with grid points missing (the file is
    damaged there, or was recorded with pauses); its ``rate`` is None, and ``gap_rate`` is that grid's."""

    rate: Fraction | None
    start: Fraction
    gaps: tuple[Gap, ...] = ()
    gap_rate: Fraction | None = None
    demux_errors: int = 0  # errors the demuxer reported while reading the packets (damage it skipped)

    @property
    def damaged(self) -> bool:
        """Frames are missing from a constant-rate stream, and not as a recording drops one now and then:
        the demuxer skipped damage, or a gap holds ``GAP_FRAMES`` or more frames."""
        return bool(self.gaps) and (self.demux_errors > 0 or any(g.missing >= GAP_FRAMES for g in self.gaps))


def on_grid(pts: list[int], time_base: Fraction, rate: Fraction) -> bool:
    """Every ``pts[j]`` (sorted) within one tick of ``pts[0] + j / (rate * time_base)``."""
    index = grid_index(pts, time_base, rate)
    return index is not None and index == list(range(len(pts)))


def grid_index(pts: list[int], time_base: Fraction, rate: Fraction) -> list[int] | None:
    """Each ``pts`` (sorted)'s point j on the grid ``pts[0] + j / (rate * time_base)``, strictly increasing;
    None when a timestamp is off the grid (more than ``_tolerance`` away) or there is none."""
    if rate <= 0 or not pts:
        return None
    step = 1 / (rate * time_base)
    tol = _tolerance(step)
    index: list[int] = []
    for p in pts:
        j = round((p - pts[0]) / step)
        if abs(p - pts[0] - j * step) > tol or (index and j <= index[-1]):
            return None
        index.append(j)
    return index


def _tolerance(step: Fraction) -> Fraction:
    """How far (ticks) a timestamp may sit from its grid point: one tick (a coarse time base rounds), but
    under half a step, so that a time base as coarse as the rate (AVI: 1/25 at 25 fps) does not let a
    missing frame pass for rounding."""
    return min(Fraction(1), step / 3)


def input_timing(path: Path, index: int) -> InputTiming:
    """Scan the packets of video stream ``index`` (no decoding): the first of its declared and
    average rates on which every timestamp lies, or None (VFR); a damaged tail ends the scan."""
    pts: list[int] = []
    previous, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.ERROR)  # no decoder runs here: the demuxer's own reports, captured
    av.logging.set_skip_repeated(False)  # (the same file scanned twice logs the same lines)
    try:
        with av.logging.Capture() as logs, open_input(path) as container:
            stream = container.streams[index]
            time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
            declared = [Fraction(r) for r in (stream.base_rate, stream.average_rate) if r and r > 0]
            try:
                pts = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
            except av.error.FFmpegError:
                pass
    finally:
        av.logging.set_skip_repeated(skip)
        av.logging.set_level(previous)
    errors = sum(1 for level, _, _ in logs if level <= av.logging.ERROR)
    pts.sort()
    start = Fraction(pts[0]) * time_base if pts else Fraction(0)
    rates = [c for r in declared for c in (standard_rate(r), r) if c is not None]
    indices = [(rate, grid_index(pts, time_base, rate)) for rate in rates]
    for rate, index in indices:
        if index is not None and index == list(range(len(pts))):
            return InputTiming(rate, start)
    for rate, index in indices:
        gaps = _gaps(pts, index, time_base) if index is not None else ()
        if gaps:
            return InputTiming(None, start, gaps, rate, errors)
    return InputTiming(None, start)


def grid_gaps(pts: list[int], time_base: Fraction, rate: Fraction) -> tuple[Gap, ...]:
    """Where a stream with every ``pts`` (sorted) within one tick of a point of the grid
    ``pts[0] + j / (rate * time_base)``, at strictly increasing j, skips grid points: the gaps; () when
    it has none or is not on the grid (a variable-rate stream)."""
    index = grid_index(pts, time_base, rate)
    return _gaps(pts, index, time_base) if index is not None else ()


def _gaps(pts: list[int], index: list[int], time_base: Fraction) -> tuple[Gap, ...]:
    return tuple(Gap(Fraction(a) * time_base, Fraction(b) * time_base, jb - ja - 1)
                 for a, b, ja, jb in zip(pts, pts[1:], index, index[1:]) if jb - ja > 1)


def standard_rate(rate: Fraction) -> Fraction | None:
    """The standard frame rate within a millionth of ``rate``, if any."""
    for s in _STANDARD_RATES:
        if abs(s - rate) <= _SNAP * s:
            return s
    return None


def _rational_gcd(a: Fraction, b: Fraction) -> Fraction:
    """The largest x with a/x and b/x both integers (b may be 0)."""
    if b == 0:
        return a
    den = a.denominator * b.denominator // gcd(a.denominator, b.denominator)
    return Fraction(gcd(int(a * den), int(b * den)), den)


@dataclass(frozen=True)
class CfrGrid:
    """Output frame n at ``start_ticks + n * step_ticks`` in ``time_base``."""

    time_base: Fraction
    start_ticks: int
    step_ticks: int

    def pts(self, n: int) -> int:
        return self.start_ticks + n * self.step_ticks


def cfr_grid(rate_out: Fraction, start: Fraction) -> CfrGrid:
    """A time base holding the step 1/rate_out and the start exactly; where that would need a
    denominator over 32 bits the start is rounded to the nearest step instead."""
    step = 1 / Fraction(rate_out)
    tb = _rational_gcd(step, abs(start))
    if tb.denominator > _MAX_TIME_BASE_DEN:
        tb = step
        start = round(start / step) * step
    return CfrGrid(tb, int(start / tb), int(step / tb))
