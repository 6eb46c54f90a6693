"""The bench's headline: the two tools as whole commands, alternating, on one clip."""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest
from click.testing import CliRunner

from conftest import write_clip
from vidrestore.cli import main
from vidrestore.config import RunOptions
from vidrestore.errors import UsageError
from vidrestore.evaluate import headline as hl


def test_the_commands_alternate_and_the_ratio_is_of_the_medians():
    seen = []
    times = {"a": iter([10.0, 30.0, 11.0]), "b": iter([5.0, 5.0, 4.0])}

    def runner(argv):
        seen.append(argv[0])
        return hl.Timed(next(times[argv[0]]), 100.0 if argv[0] == "a" else 50.0)

    out = hl.alternate(hl.Command("A", ("a",)), hl.Command("B", ("b",)), 3, runner=runner)
    assert seen == ["a", "b", "a", "b", "a", "b"]
    assert out["a"]["median_s"] == 11.0 and out["b"]["median_s"] == 5.0
    assert out["a"]["min_s"] == 10.0 and out["a"]["max_s"] == 30.0
    assert out["ratio_of_medians"] == pytest.approx(2.2)
    assert out["ratio_min"] == pytest.approx(2.0) and out["ratio_max"] == pytest.approx(6.0)
    assert out["a"]["peak_rss_mb"] == 100.0 and out["b"]["peak_rss_mb"] == 50.0
    with pytest.raises(UsageError):
        hl.alternate(hl.Command("A", ("a",)), hl.Command("B", ("b",)), 0, runner=runner)


def test_a_timed_command_reports_its_own_peak_memory_and_a_failure_its_last_line():
    small = hl.run_timed([sys.executable, "-c", "pass"])
    big = hl.run_timed([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert big.peak_rss_mb > small.peak_rss_mb + 250
    assert small.seconds > 0
    with pytest.raises(UsageError, match="exit 3.*it broke"):
        hl.run_timed([sys.executable, "-c", "import sys; print('it broke', file=sys.stderr); sys.exit(3)"])


def test_enhance_runs_with_the_bench_options_and_minterpolate_encodes_as_enhance_does(tmp_path):
    ours = hl.enhance_command(tmp_path / "in.mp4", tmp_path / "o.mp4", 2, "interp",
                              RunOptions(device="cpu", tile=256), "libx264", 2)
    argv = list(ours.argv)
    assert argv[:3] == [sys.executable, "-m", "vidrestore"] and "enhance" in argv
    for flag, value in (("--fps-x", "2"), ("--mode", "interp"), ("--device", "cpu"), ("--tile", "256"),
                        ("--threads", "2")):
        assert argv[argv.index(flag) + 1] == value
    assert "--precision" not in argv  # defaults are left to enhance
    theirs = hl.minterpolate_command(tmp_path / "in.mp4", tmp_path / "m.mp4", 2, Fraction(30000, 1001), "libx264",
                                     18, "medium", "/usr/bin/ffmpeg")
    argv = list(theirs.argv)
    assert argv[argv.index("-vf") + 1] == "minterpolate=fps=60000/1001:mi_mode=mci"
    assert argv[argv.index("-crf") + 1] == "18" and argv[argv.index("-preset") + 1] == "medium"
    fallback = hl.minterpolate_command(tmp_path / "in.mp4", tmp_path / "m.mp4", 2, Fraction(30), "libx264", 18,
                                       "medium", None)
    assert fallback.label == "minterpolate (PyAV)" and "vidrestore.evaluate.minterpolate_run" in fallback.argv
    with pytest.raises(UsageError, match="no such program"):
        hl.find_ffmpeg("/nonexistent/ffmpeg")


def test_the_pyav_minterpolate_process_takes_a_broadcast_rate(tmp_path):
    # 10 s: past some hundred frames without time stamps of their own, the muxer refused a packet (EINVAL)
    clip = write_clip(tmp_path / "in.mp4", n=300, size=(64, 48), audio=False, rate=Fraction(30000, 1001))
    timed = hl.run_timed([sys.executable, "-m", "vidrestore.evaluate.minterpolate_run", str(clip),
                          str(tmp_path / "out.mp4"), "2"])
    assert timed.seconds > 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        s = c.streams.video[0]
        assert s.average_rate == Fraction(60000, 1001)
        assert sum(1 for _ in c.decode(s)) == 600


@pytest.mark.slow
def test_bench_headline_on_a_given_clip(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no ffmpeg command: the PyAV process stands in
    clip = write_clip(tmp_path / "in.mp4", n=8, size=(64, 48), audio=False)
    res = CliRunner().invoke(main, ["bench", "--input", str(clip), "--fps-x", "2", "--mode", "interp", "--device",
                                    "cpu", "--rounds", "1", "--frames", "2", "--warmup", "0", "--no-pipeline",
                                    "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    h = report["headline"]
    assert h["clip"]["path"] == str(clip) and h["clip"]["frames"] == 8 and h["clip"]["resolution"] == "64x48"
    assert h["a"]["label"] == "vidrestore enhance" and h["b"]["label"] == "minterpolate (PyAV)"
    assert h["a"]["median_s"] > 0 and h["ratio_of_medians"] > 0
    assert report["settings"]["resolution"] == "64x48"
    assert not Path(h["a"]["argv"][h["a"]["argv"].index("-o") + 1]).exists()  # in a temporary folder, removed
