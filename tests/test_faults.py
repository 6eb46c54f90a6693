"""Faults at the edges of a run: a file appearing at the output while running, two runs on one output,
signals at start, mid-run, twice in quick succession and just after the final rename, and `kill -9`'s
partial file cleaned up by the next run (and only a dead process's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import write_clip
from vidrestore.cli import main
from vidrestore.config import EnhanceConfig
from vidrestore.errors import OutputError
from vidrestore.io import files

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and renames")
ENV = {**os.environ, "VIDRESTORE_PROGRESS_INTERVAL": "3600"}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a small busy machine, spinning OpenMP threads make these tiny runs 30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "in.mp4", n=12, size=(64, 48), audio=False)


def partials(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if ".partial" in n)


def run_cfg(clip: Path, out: Path, **kw) -> EnhanceConfig:
    return EnhanceConfig(input=clip, output=out, factor=2, **kw)


def test_a_file_appearing_at_the_output_is_not_replaced(tiny_model, clip, tmp_path):
    from vidrestore.pipeline import run

    out = tmp_path / "out.mp4"

    def appear(progress):
        if not out.exists():
            out.write_bytes(b"someone else's")

    with pytest.raises(OutputError, match="output appeared while running: .*out.mp4 .*--overwrite"):
        run(run_cfg(clip, out), progress=appear, model=tiny_model, device=torch.device("cpu"), dtype=torch.float32)
    assert out.read_bytes() == b"someone else's" and os.listdir(tmp_path) == ["out.mp4"]


def test_overwrite_replaces_a_file_that_appeared(tiny_model, clip, tmp_path):
    from vidrestore.pipeline import run

    out = tmp_path / "out.mp4"
    summary = run(run_cfg(clip, out, overwrite=True), progress=lambda p: out.exists() or out.write_bytes(b"x"),
                  model=tiny_model, device=torch.device("cpu"), dtype=torch.float32)
    assert summary.frames_out == 24 and out.stat().st_size > 100 and os.listdir(tmp_path) == ["out.mp4"]


def test_cli_exit_4_when_the_output_appears(tiny_weights, clip, tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    real = files.create_temp

    def and_appear(target):
        temp = real(target)
        out.write_bytes(b"theirs")  # after the up-front check, while the run goes on
        return temp

    monkeypatch.setattr(files, "create_temp", and_appear)
    res = CliRunner(env=ENV).invoke(main, ["enhance", str(clip), "-o", str(out), "--weights", str(tiny_weights),
                                           "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 4, res.output
    assert res.output.strip().splitlines()[-1].startswith("vidrestore: error: output appeared while running")
    assert out.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["out.mp4"]


def test_rename_never_replaces_without_overwrite(tmp_path):
    target = tmp_path / "t.mp4"
    target.write_bytes(b"old")
    temp = files.create_temp(target)
    with pytest.raises(OutputError, match="appeared"):
        files.commit(temp, target)
    assert target.read_bytes() == b"old" and not temp.exists()
    temp = files.create_temp(target)
    temp.write_bytes(b"new")
    files.commit(temp, target, overwrite=True)
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["t.mp4"]


def enhance_cmd(clip: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidrestore", "enhance", str(clip), "-o", str(out), "--weights", str(weights),
            "--device", "cpu", "--threads", "1", *extra]


def spawn(clip: Path, out: Path, weights: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(enhance_cmd(clip, out, weights, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def test_two_runs_on_one_output_exactly_one_succeeds(tiny_weights, clip, tmp_path):
    out = tmp_path / "out.mp4"
    procs = [spawn(clip, out, tiny_weights) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 4], results
    err = next(e for code, e in results if code == 4)
    assert "vidrestore: error: output" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == ["out.mp4"] and out.stat().st_size > 100


def wait_for_partial(proc: subprocess.Popen, folder: Path, timeout: float = 240) -> Path:
    """Wait until the run has written bytes to its partial file (it is mid-run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for name in partials(folder):
            try:
                if (folder / name).stat().st_size > 0:
                    return folder / name
            except FileNotFoundError:
                pass
        time.sleep(0.01)
    raise AssertionError(f"the run ended (exit {proc.poll()}) before it could be interrupted")


def assert_interrupted(proc: subprocess.Popen, folder: Path) -> None:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines and lines[-1] == "vidrestore: error: interrupted; no output was written", err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert os.listdir(folder) == [], os.listdir(folder)


@pytest.mark.parametrize("when, signals, gap", [
    ("start", (signal.SIGINT,), 0.0),
    ("mid", (signal.SIGTERM,), 0.0),
    ("mid", (signal.SIGINT, signal.SIGTERM), 0.01),
    ("mid", (signal.SIGINT, signal.SIGINT), 0.2),
])
def test_signals_exit_130_and_leave_nothing(tiny_weights, clip, tmp_path, when, signals, gap):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = spawn(clip, out_dir / "x.mp4", tiny_weights, "--fps-x", "8")
    if when == "start":
        time.sleep(1.5)  # loading the CLI, torch or the model
        assert proc.poll() is None
    else:
        wait_for_partial(proc, out_dir)
    for n, signum in enumerate(signals):
        if n:
            time.sleep(gap)
        proc.send_signal(signum)
    assert_interrupted(proc, out_dir)


def test_signal_just_after_the_rename_says_the_output_was_written(tiny_weights, clip, tmp_path, monkeypatch):
    """The signal lands while the final rename is recorded: it waits for the record, and the message says
    the output is complete (exit 130 all the same)."""
    from vidrestore import interrupts

    real = interrupts.mark_committed

    def then_signal(path):
        real(path)
        signal.raise_signal(signal.SIGINT)  # held until the commit is done

    monkeypatch.setattr(interrupts, "mark_committed", then_signal)
    out = tmp_path / "out.mp4"
    res = CliRunner(env=ENV).invoke(main, ["enhance", str(clip), "-o", str(out), "--weights", str(tiny_weights),
                                           "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 130, res.output
    assert res.output.strip().splitlines()[-1] == f"vidrestore: error: interrupted after the output was written: {out}"
    assert os.listdir(tmp_path) == ["out.mp4"] and out.stat().st_size > 100
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back to the in-process caller


def test_kill_9_partial_removed_by_the_next_run_a_live_ones_kept(tiny_weights, clip, tmp_path):
    out = tmp_path / "x.mp4"
    proc = spawn(clip, out, tiny_weights, "--fps-x", "8")
    stale = wait_for_partial(proc, tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    assert stale.exists() and f".x.vidrestore-{proc.pid}-" in stale.name
    live = tmp_path / f".x.vidrestore-{os.getpid()}-0123abcd.partial.mp4"  # a run of a process that is alive
    live.write_bytes(b"busy")
    other = tmp_path / ".y.vidrestore-999999999-0123abcd.partial.mp4"  # another output's: not this run's business
    other.write_bytes(b"")
    res = CliRunner(env=ENV).invoke(main, ["enhance", str(clip), "-o", str(out), "--weights", str(tiny_weights),
                                           "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "x.mp4"])
