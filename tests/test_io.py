"""Probing, the decoding thread, pixel-format choice and output checks."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import moving_pattern
from vidrestore.errors import InputError, OutputError, UsageError
from vidrestore.io import probe
from vidrestore.io.reader import FrameReader
from vidrestore.io.formats import check_codec, check_target, choose_pix_fmt, container_format_for


def test_probe_reports_exact_rate_count_duration_and_streams(make_clip):
    path = make_clip(n=9, size=(64, 48), language="fra")
    info = probe(path)
    assert info.rate == Fraction(30000, 1001)
    assert info.frame_count == 9 and info.frame_count_exact
    assert info.duration == pytest.approx(9 * 1001 / 30000)
    assert info.cfr is True
    assert (info.width, info.height, info.pix_fmt, info.bit_depth) == (64, 48, "yuv420p", 8)
    kinds = [(s.type, s.codec) for s in info.streams]
    assert kinds == [("video", "h264"), ("audio", "aac")]
    assert info.streams[0].language == "fra"


def test_probe_detects_variable_frame_rate(make_clip):
    pts = [0, 1, 2, 4, 5, 8, 9, 10]  # irregular steps
    path = make_clip("vfr.mkv", moving_pattern(8, 32, 32), rate=Fraction(25), time_base=Fraction(1, 25),
                     pts=pts, audio=False)
    info = probe(path)
    assert info.cfr is False and info.frame_count == 8


def test_probe_reads_rotation_and_colour(make_clip):
    path = make_clip(rotation=90, colour=(1, 1, 1, 1), audio=False)
    info = probe(path)
    assert info.rotation == 90
    assert (info.colour.primaries, info.colour.transfer, info.colour.matrix, info.colour.range) == (1, 1, 1, 1)


def test_reader_yields_every_frame_with_increasing_timestamps(make_clip):
    path = make_clip(n=7)
    info = probe(path, scan=False)
    with FrameReader(info) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(7))
    assert [f.pts for f in frames] == [i * 1001 for i in range(7)]
    assert all(f.duration == 1001 for f in frames)
    assert frames[0].rgb.shape == (48, 64, 3) and frames[0].rgb.dtype == np.uint8


def test_reader_keeps_ten_bit_precision(make_clip):
    frames16 = [f.astype(np.uint16) * 257 for f in moving_pattern(3, 32, 32)]
    path = make_clip("ten.mkv", frames16, codec="ffv1", pix_fmt="yuv444p10le", audio=False)
    info = probe(path, scan=False)
    assert info.bit_depth == 10
    with FrameReader(info) as reader:
        frames = list(reader)
    assert frames[0].rgb.dtype == np.uint16
    assert len(np.unique(frames[0].rgb[..., 0] & 0x3F)) > 1  # more than 8 bits of information


def _truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_reader_reports_truncated_matroska_with_the_frame(make_clip):
    path = _truncate(make_clip("cut.mkv", n=40, audio=False))
    info = probe(path, scan=False)
    with pytest.raises(InputError, match=r"truncated.*frame \d+"):
        with FrameReader(info) as reader:
            list(reader)


def test_reader_reports_corrupt_mp4_with_the_frame(make_clip):
    path = make_clip("fs.mp4", n=40, audio=False, options={"movflags": "faststart"})
    _truncate(path)
    info = probe(path, scan=False)
    with pytest.raises(InputError, match=r"frame \d+"):
        with FrameReader(info) as reader:
            list(reader)


def test_frames_without_timestamps_get_them_in_order(tmp_path):
    """A raw H.264 stream has no timestamps: its frames come out of the decoder with pts None, and the
    reader numbers them at the nominal step, strictly increasing."""
    from conftest import write_clip

    path = write_clip(tmp_path / "raw.h264", n=12, audio=False)
    info = probe(path, scan=True)
    with FrameReader(info) as reader:
        frames = list(reader)
    assert len(frames) == 12 and [f.index for f in frames] == list(range(12))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:])) and all(f.duration > 0 for f in frames)


def test_reader_close_stops_the_thread_early(make_clip):
    path = make_clip(n=30, audio=False)
    reader = FrameReader(probe(path, scan=False), queue_size=2)
    it = iter(reader)
    next(it)
    reader.close()
    assert not reader._worker.alive


@pytest.mark.parametrize("src,codec,size,expected", [
    ("yuv420p", "libx264", (64, 48), "yuv420p"),
    ("yuv420p10le", "libx264", (64, 48), "yuv420p10le"),
    ("yuv420p", "libx264", (67, 45), "yuv444p"),  # x264 rejects odd sizes with 4:2:0
    ("yuv420p", "ffv1", (67, 45), "yuv420p"),
    ("gbrp", "ffv1", (64, 48), "bgr0"),  # 8-bit RGB stays RGB (lossless)
    ("rgb24", "ffv1", (64, 48), "bgr0"),
    ("gbrp10le", "ffv1", (64, 48), "gbrp10le"),
    ("yuv422p", "libx264", (64, 48), "yuv422p"),
    ("yuvj420p", "libx264", (64, 48), "yuv420p"),
    ("yuv444p12le", "libsvtav1", (64, 48), "yuv420p10le"),
    ("gray", "libx264", (64, 48), "gray"),
])
def test_pixel_format_is_kept_or_nearest(src, codec, size, expected):
    assert choose_pix_fmt(src, codec, *size) == expected


def test_output_checks(tmp_path, make_clip):
    src = make_clip(n=3, audio=False)
    with pytest.raises(UsageError, match="same file"):
        check_target(src, src, overwrite=True)
    with pytest.raises(OutputError, match="exists"):
        check_target(src.with_name("in.mp4"), tmp_path / "other.mp4", overwrite=False)
    with pytest.raises(OutputError, match="does not exist"):
        check_target(tmp_path / "nope" / "out.mp4", src, overwrite=False)
    with pytest.raises(UsageError, match="unknown output container"):
        container_format_for(tmp_path / "out.notaformat")
    assert container_format_for(tmp_path / "out.mkv") == "matroska"
    with pytest.raises(UsageError, match="unknown codec"):
        check_codec("no-such-codec", "mp4")
    with pytest.raises(UsageError, match="cannot hold"):
        check_codec("libx264", "webm")
    with pytest.raises(UsageError, match="not a video encoder"):
        check_codec("aac", "mp4")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert os.listdir(tmp_path) == ["in.mp4"]


def test_a_variable_rate_stream_in_a_fine_time_base_has_its_average_rate():
    """r_frame_rate can be the time base itself (90000 for 1/90000): it was reported as "90000 -> 180000
    fps" and the output claimed 180000 fps."""
    from types import SimpleNamespace

    from vidrestore.io.probe import stream_rate

    vfr = SimpleNamespace(base_rate=Fraction(90000), average_rate=Fraction(240000, 8008), guessed_rate=None)
    assert stream_rate(vfr) == Fraction(240000, 8008)
    cfr = SimpleNamespace(base_rate=Fraction(30000, 1001), average_rate=Fraction(2997, 100), guessed_rate=None)
    assert stream_rate(cfr) == Fraction(30000, 1001)  # the exact nominal rate where it agrees with the average


def test_a_matroska_file_cut_short_is_refused_before_the_run(make_clip, tmp_path):
    """Matroska has no frame count in its index, so a file cut short used to fail at the end of the run
    (after all the work); its header's duration tells the scan, and the run is refused up front."""
    from vidrestore.io.probe import check_complete

    full = make_clip("full.mkv", n=60, audio=True)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    info = probe(cut, scan=True)
    assert info.short_of is not None and info.frame_count < 60 and info.stops_at_byte is None  # cut, not damaged
    with pytest.raises(InputError, match=r"is truncated: its header says 2\.0\d s .* ends after \d+ frames"):
        check_complete(info)
    assert probe(full, scan=True).short_of is None


@pytest.mark.parametrize("name, seconds", [("xvid_default.avi", 0.48), ("xvid_bf.avi", 0.44)])
def test_avi_as_ffmpeg_writes_it_runs_with_every_frame_and_its_timing(tiny_model, tmp_path, name, seconds):
    """FFmpeg's default AVI (MPEG-4 Part 2 + MP3) decodes cleanly to 11 frames, but its header counts a
    zero-byte drop chunk as a 12th: it was refused as "decoding stopped at frame 11 of 12" (exit 3).
    Now both variants run, with the drop kept as timing (frame 0 shows for two intervals)."""
    from pathlib import Path as P

    from vidrestore.config import EnhanceConfig
    from vidrestore.pipeline import run

    src = P(__file__).parent / "assets" / "avi" / name
    out = tmp_path / "o.mp4"
    summary = run(EnhanceConfig(input=src, output=out, factor=2, mode="interp"), model=tiny_model,
                  device=torch.device("cpu"), dtype=torch.float32)
    assert summary.frames_in == 11 and summary.frames_out == 22
    info = probe(out, scan=True)
    assert info.frame_count == 22 and abs(info.duration - seconds) < 1e-3  # 12 slots of 1/25 s; 11 from 1/25 s
    assert [s.type for s in info.streams] == ["video", "audio"]


def test_our_own_avi_output_reads_back_as_written(tiny_model, make_clip, tmp_path):
    """`-o x.avi` wrote 20 frames under a header that counted 240; `info` called it variable-rate and
    `enhance` refused it. It reads back with its frames, rate and duration, and runs again."""
    from vidrestore.config import EnhanceConfig
    from vidrestore.pipeline import run

    src = make_clip("in.mp4", n=10, audio=False)
    avi = tmp_path / "x.avi"
    run(EnhanceConfig(input=src, output=avi, factor=2, mode="interp"), model=tiny_model, device=torch.device("cpu"),
        dtype=torch.float32)
    info = probe(avi, scan=True)
    assert (info.frame_count, info.cfr, info.rate) == (20, True, Fraction(60000, 1001))
    assert info.index_frames in (0, 20) and info.truncation() is None
    again = run(EnhanceConfig(input=avi, output=tmp_path / "y.mp4", factor=2, mode="interp"), model=tiny_model,
                device=torch.device("cpu"), dtype=torch.float32)
    assert again.frames_out == 40
