"""Everything about an ``enhance`` job that can be decided before the model is loaded: paths, container,
codec, pixel format and size, rates and time bases. Light: no torch, so that bad jobs fail at once.

Timestamps. A constant-rate input (every timestamp within one tick of its place on the nominal rate's
grid, :mod:`vidrestore.io.timing`) gives output frame n at exactly ``start + n / (K * rate)``, on a time
base that holds that step, whatever the input container's precision (Matroska's milliseconds, say).
A variable-rate input keeps its own timestamps: with input frame j at pts p(j) (stream time base tb)
the output time base is tb/K and output frame j*K+i gets pts K*p(j) + i*(p(j+1) - p(j)), i.e. time
t(j) + i/K of the frame interval. Either way the last frame's interval is its own duration, so the
output lasts as long as the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vidrestore.config import EnhanceConfig
from vidrestore.io import formats
from vidrestore.io.probe import VideoInfo, check_complete, check_readable, probe
from vidrestore.io.timing import CfrGrid, cfr_grid, input_timing

_MAX_TIME_BASE_DEN = 2**31 - 1


@dataclass(frozen=True)
class Plan:
    """Everything decided before the model is loaded."""

    config: EnhanceConfig
    info: VideoInfo
    format_name: str
    pix_fmt: str
    full_range_source: bool
    factor: int
    rate_in: Fraction  # the constant input rate, or the nominal one for VFR input
    rate_out: Fraction
    time_base_out: Fraction
    pts_scale: int  # VFR: output pts = pts_scale * input pts + i * step  (pts_scale == factor normally)
    grid: CfrGrid | None = None  # CFR: output frame n at grid.pts(n); None for VFR input
    width: int = 0  # encoded size (the input's, or padded to even)
    height: int = 0
    notes: tuple[str, ...] = ()

    @property
    def variable_rate(self) -> bool:
        return self.grid is None


def output_time_base(tb_in: Fraction, factor: int) -> tuple[Fraction, int]:
    """Output time base tb_in/K (every output pts an integer) and the pts multiplier K."""
    tb = Fraction(tb_in) / factor
    if tb.denominator <= _MAX_TIME_BASE_DEN:
        return tb, factor
    # an unusually fine input time base (tb/K would overflow a 32-bit denominator): keep tb_in, and the
    # in-between timestamps are rounded to it
    return Fraction(tb_in), 1


def plan(config: EnhanceConfig) -> Plan:
    """Validate the job and decide formats and rates; raises typed errors, writes nothing."""
    src, dst = Path(config.input), Path(config.output)
    check_readable(src)
    formats.check_target(dst, src, config.overwrite)
    format_name = formats.container_format_for(dst)
    formats.check_codec(config.codec, format_name)
    formats.check_preset(config.codec, config.preset)
    info = probe(src, scan=True)  # the packet scan finds a truncated file before any frame is processed
    check_complete(info)
    pix_fmt_src, full_range = formats.normalize_source_format(info.pix_fmt)
    picture = formats.choose_picture(pix_fmt_src, config.codec, info.width, info.height)
    k = config.effective_factor
    timing = input_timing(src, info.video_index)
    tb_out, scale = output_time_base(info.time_base, k)
    grid = None
    rate_in = info.rate
    if timing.rate is not None:
        rate_in = timing.rate
        grid = cfr_grid(rate_in * k, timing.start)
        tb_out, scale = grid.time_base, k
    return Plan(config=config, info=info, format_name=format_name, pix_fmt=picture.pix_fmt,
                full_range_source=full_range, factor=k, rate_in=rate_in, rate_out=rate_in * k, time_base_out=tb_out,
                pts_scale=scale, grid=grid, width=picture.width, height=picture.height, notes=picture.notes)
