"""Exact output rates from any container: a constant-rate input enhanced K times is stored at exactly
K times its nominal rate with every step on that grid, whatever the input's time-base precision
(Matroska and WebM store milliseconds); a variable-rate input keeps its own timestamps."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

from conftest import moving_pattern, packet_times
from vidrestore.config import EnhanceConfig
from vidrestore.io.timing import cfr_grid, on_grid, standard_rate
from vidrestore.pipeline import run

RATES = [Fraction(30000, 1001), Fraction(24), Fraction(25)]


def enhance(model, src: Path, dst: Path, **kw):
    notes: list[str] = []
    summary = run(EnhanceConfig(input=src, output=dst, **kw), notes=notes.append, model=model,
                  device=torch.device("cpu"), dtype=torch.float32)
    return summary, notes


def duration(path: Path) -> Fraction:
    pts, durs, tb = packet_times(path)
    return (pts[-1] + durs[-1] - pts[0]) * tb


def stored_rates(path: Path) -> tuple[Fraction, Fraction]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return Fraction(v.base_rate), Fraction(v.average_rate)


def audio_start(path: Path) -> Fraction:
    """The first audio packet's time, priming included (muxers shift it differently)."""
    pts, _, tb = packet_times(path, "audio")
    return pts[0] * tb


@pytest.mark.parametrize("rate", RATES, ids=["29.97", "24", "25"])
@pytest.mark.parametrize("src_ext,codec,dst_ext", [("mkv", "libx264", "mp4"), ("webm", "libvpx-vp9", "mp4"),
                                                   ("mov", "libx264", "mkv")])
def test_constant_rate_input_gives_exactly_k_times_the_rate(tiny_model, make_clip, tmp_path, rate, src_ext, codec,
                                                            dst_ext):
    n, k = 7, 2
    audio = src_ext != "webm"  # conftest's audio is AAC, which WebM cannot hold
    src = make_clip(f"in.{src_ext}", moving_pattern(n, 32, 32), rate=rate, codec=codec, audio=audio)
    dst = tmp_path / f"out.{dst_ext}"
    summary, _ = enhance(tiny_model, src, dst, factor=k)
    want = rate * k
    assert (summary.rate_in, summary.rate_out, summary.variable_rate) == (rate, want, False)
    assert f"-> {want.numerator}{'' if want.denominator == 1 else f'/{want.denominator}'} fps" in summary.one_line()
    pts, _, tb = packet_times(dst)
    assert len(pts) == n * k
    t = [p * tb for p in pts]
    if dst_ext == "mp4":  # MP4 holds the grid exactly
        assert stored_rates(dst) == (want, want)
        assert all(b - a == 1 / want for a, b in zip(t, t[1:]))
    else:  # Matroska: milliseconds, each on the exact grid to the ms; the rate within its 1 ns duration
        assert tb == Fraction(1, 1000)
        assert on_grid(pts, tb, want)  # every pts within 1 ms of start + j / want
        assert {b - a for a, b in zip(pts, pts[1:])} <= {int(1000 / want), int(1000 / want) + 1}
        for stored in stored_rates(dst):
            assert abs(1 / stored - 1 / want) < Fraction(1, 10**9)
    # as long as the input (within the coarser container's tick), and in step with the audio
    in_tick = packet_times(src)[2]
    assert abs(duration(dst) - duration(src)) <= max(in_tick, tb)
    if audio:
        lag = (t[0] - audio_start(dst)) - (packet_times(src)[0][0] * in_tick - audio_start(src))
        assert abs(lag) <= max(in_tick, tb)


def test_mkv_29_97_into_mp4_is_60000_1001_with_steps_of_1001_60000(tiny_model, make_clip, tmp_path):
    src = make_clip("in.mkv", moving_pattern(10, 32, 32))
    assert packet_times(src)[2] == Fraction(1, 1000)
    dst = tmp_path / "out.mp4"
    enhance(tiny_model, src, dst, factor=2)
    assert stored_rates(dst) == (Fraction(60000, 1001), Fraction(60000, 1001))
    pts, durs, tb = packet_times(dst)
    assert {(b - a) * tb for a, b in zip(pts, pts[1:])} == {Fraction(1001, 60000)}
    assert {d * tb for d in durs} == {Fraction(1001, 60000)}


def test_variable_rate_input_summary_says_variable(tiny_model, make_clip, tmp_path):
    pts = [0, 1, 2, 4, 5, 8]
    src = make_clip("vfr.mkv", moving_pattern(6, 32, 32), rate=Fraction(25), time_base=Fraction(1, 25), pts=pts,
                    audio=False)
    summary, _ = enhance(tiny_model, src, tmp_path / "out.mp4", factor=2)
    assert summary.variable_rate is True
    line = summary.one_line()
    assert "variable frame rate" in line and "fps, joint" not in line.split(")")[0]
    out_pts, _, tb = packet_times(tmp_path / "out.mp4")
    assert [p * tb for p in out_pts[::2]] == [Fraction(p, 25) for p in pts]  # its own timestamps


def test_grid_helpers():
    ms = Fraction(1, 1000)
    ntsc_ms = [round(j * Fraction(1001, 30)) for j in range(100)]  # 0, 33, 67, 100, ...
    assert on_grid(ntsc_ms, ms, Fraction(30000, 1001))
    assert not on_grid(ntsc_ms, ms, Fraction(30))  # 3 ms off by frame 99
    assert not on_grid([0, 40, 80, 160], ms, Fraction(25))
    assert standard_rate(Fraction(19001, 317)) == Fraction(60000, 1001)  # Matroska's 16683333 ns
    assert standard_rate(Fraction(59)) is None
    g = cfr_grid(Fraction(60000, 1001), Fraction(21, 1000))
    assert g.pts(0) * g.time_base == Fraction(21, 1000)
    assert g.step_ticks * g.time_base == Fraction(1001, 60000)


@pytest.mark.parametrize("ext", ["mp4", "mov"])
def test_variable_rate_mp4_declares_its_whole_duration(tiny_model, make_clip, tmp_path, ext):
    """MP4/MOV keep durations as decode-time steps; with B-frames over irregular steps the file declared
    itself one frame or more short. The last frame ends where the input's does, and the file says so."""
    pts = [0, 1, 2, 4, 5, 8]
    src = make_clip("vfr.mkv", moving_pattern(6, 32, 32), rate=Fraction(25), time_base=Fraction(1, 25), pts=pts,
                    audio=False)
    dst = tmp_path / f"out.{ext}"
    summary, _ = enhance(tiny_model, src, dst, factor=2, mode="interp")
    assert summary.variable_rate
    with av.open(str(dst)) as c:
        s = c.streams.video[0]
        tb = Fraction(s.time_base)
        declared = Fraction(s.duration) * tb
        packets = sorted((p.pts, p.duration) for p in c.demux(s) if p.size)
    end = Fraction(pts[-1] + 1, 25)  # the last input frame lasts one step
    assert declared == end
    assert [Fraction(p + d) * tb for p, d in packets][-1] == end
