"""A new user's first hour: errors that need no model come before torch is imported (a truncated file,
an output that exists, --mode deblur with --fps-x), progress lines without a terminal, and tests that
skip, with their reason, on a clone with nothing beside it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SHARED, needs_shared, write_clip
from vidrestore.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _packets(path: Path) -> list[tuple[int, int]]:
    """(pos, size) of every video packet, in file order."""
    import av

    with av.open(str(path)) as c:
        return sorted((p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size)


@pytest.fixture(scope="module")
def truncated(tmp_path_factory) -> tuple[Path, Path]:
    """(a complete 60-frame MP4 with its index at the front, the same file cut in the 28th frame's data:
    the index still lists 60 frames, 27 are whole)."""
    folder = tmp_path_factory.mktemp("truncated")
    full = write_clip(folder / "full.mp4", n=60, audio=False, options={"movflags": "+faststart"})
    pos, size = _packets(full)[27]
    cut = folder / "cut.mp4"
    cut.write_bytes(full.read_bytes()[:pos + size // 2])
    return full, cut


def _no_processing(monkeypatch) -> None:
    from vidrestore import pipeline

    def refuse(*_a, **_k):
        raise AssertionError("the pipeline ran: the error should have come before any frame")

    monkeypatch.setattr(pipeline, "run", refuse)


def test_truncated_mp4_fails_before_any_frame_with_one_line_and_exit_3(truncated, tiny_weights, tmp_path, monkeypatch):
    _, cut = truncated
    _no_processing(monkeypatch)
    res = CliRunner().invoke(main, ["enhance", str(cut), "-o", str(tmp_path / "out.mp4"), "--weights",
                                    str(tiny_weights), "--device", "cpu"])
    assert res.exit_code == 3, (res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert lines == [f"vidrestore: error: {cut} is truncated: its index lists 60 video frames but the file "
                     f"({cut.stat().st_size} bytes) ends after 27 of them; copy or download it again"]
    assert list(tmp_path.iterdir()) == []


def test_info_reports_truncation_in_text_and_json(truncated):
    full, cut = truncated
    res = CliRunner().invoke(main, ["info", str(cut)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"warning: {cut} is truncated: its index lists 60 video frames but the file "
        f"({cut.stat().st_size} bytes) ends after 27 of them")
    data = json.loads(CliRunner().invoke(main, ["info", str(cut), "--json"]).output)
    assert (data["truncated"], data["index_frames"], data["frame_count"]) == (True, 60, 27)
    data = json.loads(CliRunner().invoke(main, ["info", str(full), "--json"]).output)
    assert (data["truncated"], data["index_frames"], data["frame_count"]) == (False, 60, 60)
    assert "warning" not in CliRunner().invoke(main, ["info", str(full)]).output


def test_a_file_cut_between_two_frames_is_truncated_too(truncated):
    from vidrestore.io.probe import probe

    full, _ = truncated
    pos, _ = _packets(full)[40]
    cut = full.with_name("cut_at_boundary.mp4")
    cut.write_bytes(full.read_bytes()[:pos])
    info = probe(cut)
    assert info.truncated and (info.index_frames, info.frame_count) == (60, 40)


@pytest.mark.parametrize("lost", [1, 12])
def test_a_matroska_file_missing_its_last_frames_is_truncated(lost, tmp_path):
    """Matroska has no frame count: its header's duration is the promise. The packets may stop short of it by
    the rounding of its 1 ms timestamps (and by an audio packet's trimmed padding), not by a fraction of a
    second: one video frame cut off the end is found."""
    from vidrestore.io.probe import probe

    full = write_clip(tmp_path / "full.mkv", n=60, audio=False)
    assert probe(full).truncation() is None
    pos, _ = _packets(full)[60 - lost]
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[:pos])
    info = probe(cut)
    assert info.frame_count == 60 - lost
    assert "is truncated: its header says 2.00 s" in (info.truncation() or "")


def test_deblur_with_fps_x_is_a_usage_error(make_clip, tiny_weights, tmp_path, monkeypatch):
    src = make_clip(n=3, audio=False)
    args = [str(src), "--weights", str(tiny_weights), "--device", "cpu", "--mode", "deblur", "-q"]
    _no_processing(monkeypatch)
    for flag in ("--fps-x", "-k"):
        res = CliRunner().invoke(main, ["enhance", "-o", str(tmp_path / "out.mp4"), *args, flag, "4"])
        assert res.exit_code == 2, res.output
        assert res.stderr.strip().splitlines() == [
            "vidrestore: error: --mode deblur keeps the frame rate, so --fps-x 4 contradicts it: leave out --fps-x, "
            "or use --mode joint to deblur and interpolate"]
    monkeypatch.undo()
    for extra in ([], ["--fps-x", "1"]):  # the default K, or K = 1, is fine
        dst = tmp_path / f"out{len(extra)}.mkv"
        res = CliRunner().invoke(main, ["enhance", "-o", str(dst), *args, *extra, "--codec", "ffv1"])
        assert res.exit_code == 0, res.output
        assert dst.is_file()


_PROBE_IMPORTS = """
import sys
from vidrestore.cli import main
try:
    main(sys.argv[1:], prog_name="vidrestore")
except SystemExit as stop:
    code = stop.code
print(code, "torch" in sys.modules)
"""


@pytest.mark.parametrize("case", ["output exists", "truncated", "deblur with fps-x", "codec for container"])
def test_errors_that_need_no_model_come_before_torch_is_imported(case, truncated, tmp_path):
    full, cut = truncated
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"x")
    args, code = {
        "output exists": ([str(full), "-o", str(existing)], 4),
        "truncated": ([str(cut), "-o", str(tmp_path / "o.mp4")], 3),
        "deblur with fps-x": ([str(full), "-o", str(tmp_path / "o.mp4"), "--mode", "deblur", "--fps-x", "2"], 2),
        "codec for container": ([str(full), "-o", str(tmp_path / "o.webm"), "--codec", "libx264"], 2),
    }[case]
    res = subprocess.run([sys.executable, "-c", _PROBE_IMPORTS, "enhance", *args], capture_output=True, text=True,
                         timeout=120)
    assert res.stdout.split() == [str(code), "False"], (res.stdout, res.stderr)
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("vidrestore: error: "), res.stderr


def test_progress_lines_without_a_terminal(make_clip, tiny_weights, tmp_path, monkeypatch):
    """stderr is not a TTY under CliRunner: plain lines (frames done/total, fps, ETA) at the set interval
    (0 s here: one per report), then the summary; --quiet prints nothing."""
    src = make_clip(n=5, audio=False)
    monkeypatch.setenv("VIDRESTORE_PROGRESS_INTERVAL", "0")
    base = ["enhance", str(src), "--weights", str(tiny_weights), "--device", "cpu", "--fps-x", "2",
            "--codec", "ffv1"]
    res = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "a.mkv")])
    assert res.exit_code == 0, res.output
    lines = res.stderr.strip().splitlines()
    progress = [line for line in lines if line.startswith("in.mp4 x2: ")]
    assert len(progress) >= 2, lines
    assert progress[0].startswith("in.mp4 x2: 2/10 frames (20%), ") and " fps, elapsed 0:00:0" in progress[0]
    assert "ETA 0:00:" in progress[0]
    assert progress[-1].startswith("in.mp4 x2: 10/10 frames (100%), ")
    assert "5 -> 10 frames" in lines[-1]
    res = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "b.mkv"), "--quiet"])
    assert res.exit_code == 0 and res.stderr == "" and res.stdout == ""


def test_progress_lines_come_every_interval(monkeypatch):
    from vidrestore.cli import enhance as cli_enhance
    from vidrestore.pipeline import Progress

    clock = iter([100.0, 101.0, 104.9, 105.0, 106.0, 110.1])
    monkeypatch.setattr(cli_enhance.time, "monotonic", lambda: next(clock))
    bar = cli_enhance.ProgressBar("clip.mp4 x4", interval=5.0)
    printed = []
    monkeypatch.setattr(bar.console, "print", lambda text, **_: printed.append(text))
    for done in range(1, 7):
        bar.update(Progress(done, 4 * done, 100, 400, float(done)))
    # the first line one interval after the first report (t = 100), then one an interval after the last
    assert [p.split(":")[1].split()[0] for p in printed] == ["16/400", "24/400"]
    assert printed[0] == "clip.mp4 x4: 16/400 frames (4%), 4.0 fps, elapsed 0:00:04, ETA 0:01:36"


def test_needs_shared_skips_with_its_reason_on_a_clone_with_nothing_beside_it(tmp_path):
    """A copy of the tests' conftest in a folder with no ../shared/data beside it: a ``needs_shared``
    test is skipped, and says why."""
    tests = tmp_path / "clone" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
    (tests / "test_x.py").write_text("from conftest import needs_shared\n\n\n@needs_shared\ndef test_x():\n"
                                     "    raise AssertionError('ran')\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tests)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 skipped" in res.stdout
    assert f"needs the project's shared data beside the repository ({tmp_path / 'shared' / 'data'} is absent" \
        in res.stdout


@needs_shared
def test_shared_data_is_what_needs_shared_promises():
    assert (SHARED / "reds_000").is_dir() and (SHARED / "clips" / "01_dog.mp4").is_file()


def test_enhance_probes_and_scans_the_input_once(make_clip, tiny_weights, tmp_path, monkeypatch):
    """The CLI plans before torch loads and hands that plan to the run: one probe and one timing scan."""
    import vidrestore.plan as plan_module

    calls = {"probe": 0, "timing": 0}
    real_probe, real_timing = plan_module.probe, plan_module.input_timing

    def probe(*a, **kw):
        calls["probe"] += 1
        return real_probe(*a, **kw)

    def timing(*a, **kw):
        calls["timing"] += 1
        return real_timing(*a, **kw)

    monkeypatch.setattr(plan_module, "probe", probe)
    monkeypatch.setattr(plan_module, "input_timing", timing)
    src = make_clip(n=3, audio=False)
    res = CliRunner().invoke(main, ["enhance", str(src), "-o", str(tmp_path / "o.mkv"), "--weights", str(tiny_weights),
                                    "--device", "cpu", "--codec", "ffv1", "-q"])
    assert res.exit_code == 0, res.output
    assert calls == {"probe": 1, "timing": 1}


def test_a_plan_for_another_job_is_refused(make_clip, tmp_path):
    from vidrestore.config import EnhanceConfig
    from vidrestore.pipeline import run
    from vidrestore.plan import plan

    src = make_clip(n=2, audio=False)
    p = plan(EnhanceConfig(input=src, output=tmp_path / "a.mp4"))
    with pytest.raises(ValueError, match="another config"):
        run(EnhanceConfig(input=src, output=tmp_path / "b.mp4"), planned=p)
