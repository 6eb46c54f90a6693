"""Faults at the edges of a run: a file appearing at the output while running, two runs on one output,
signals at start, mid-run, twice in quick succession and just after the final rename, and `kill -9`'s
partial file cleaned up by the next run (and only a dead process's)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import decode_all, write_clip
from vidrestore.cli import main
from vidrestore.config import EnhanceConfig
from vidrestore.errors import InputError, OutputError
from vidrestore.io import files
from vidrestore.io.probe import probe

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


@pytest.mark.slow
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
@pytest.mark.slow
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


SLOW_MODULE = """
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)  # the signal lands while this module is being imported
time.sleep(0.3)
DONE = True
"""

WAITS_FOR_IMPORT = """
import signal, sys, time
from vidrestore import interrupts
signal.signal(signal.SIGINT, interrupts.raise_interrupt)
sys.path.insert(0, sys.argv[1])
start = time.monotonic()
try:
    import slow_module
    time.sleep(10)
    print("not interrupted")
except KeyboardInterrupt:
    mod = sys.modules.get("slow_module")
    print("interrupted", getattr(mod, "DONE", False), round(time.monotonic() - start, 1))
"""


def test_a_signal_during_an_import_waits_for_the_import(tmp_path):
    """Ctrl-C while torch/numpy/PyAV is being imported used to leave them half-initialised (aborts,
    import errors, death by signal after the message). The CLI's handler lets the import finish, then
    the interrupt takes effect, at once."""
    (tmp_path / "slow_module.py").write_text(SLOW_MODULE)
    res = subprocess.run([sys.executable, "-c", WAITS_FOR_IMPORT, str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    word, done, seconds = res.stdout.split()
    assert (word, done) == ("interrupted", "True") and float(seconds) < 5, res.stdout


def test_an_interrupt_pending_from_an_import_stops_the_commit(tmp_path):
    from vidrestore import interrupts

    interrupts.reset()  # earlier in-process runs recorded their outputs
    (tmp_path / "pending_module.py").write_text(
        "import signal, sys\nfrom vidrestore import interrupts\n"
        "interrupts.raise_interrupt(signal.SIGINT, sys._getframe())\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import pending_module  # noqa: F401  (the handler, called mid-import, keeps the interrupt pending)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pending_module", None)
    temp, target = tmp_path / "t.partial", tmp_path / "t.mp4"
    temp.write_bytes(b"frames")
    with pytest.raises(KeyboardInterrupt):
        files.commit(temp, target)
    assert not target.exists() and not interrupts.committed()
    files.commit(temp, target)  # the interrupt was taken once
    assert target.read_bytes() == b"frames"
    interrupts.reset()


@pytest.mark.slow
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


# -- bad input: streams without a codec context, unreadable paths, no picture size ---------------------------
def one_line_exit(res, code: int, *needles: str) -> str:
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output and lines[-1].startswith("vidrestore: error:"), res.output
    for needle in needles:
        assert needle in lines[-1], res.output
    return lines[-1]


def test_a_video_stream_without_a_codec_context_is_exit_3(clip, tmp_path, monkeypatch):
    """An unknown-codec video stream (PyAV gives it no codec context): one line, exit 3, for info and enhance;
    an attachment (no codec context either) beside the video is described, not a crash."""
    import importlib

    import av

    probe_mod = importlib.import_module("vidrestore.io.probe")  # vidrestore.io's ``probe`` is the function
    mkv = tmp_path / "att.mkv"
    with av.open(str(clip)) as src, av.open(str(mkv), "w") as out:
        vs = out.add_stream_from_template(src.streams.video[0])
        out.add_attachment("font.ttf", "font/ttf", b"\0" * 64)
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = vs
                out.mux(packet)
    res = CliRunner().invoke(main, ["info", str(mkv)])
    assert res.exit_code == 0, res.output
    assert "attachment" in res.output and "font.ttf" in res.output, res.output

    class NoCodec:
        def __init__(self, stream):
            self._s = stream

        codec_context = None

        def __getattr__(self, name):
            return getattr(self._s, name)

    real = probe_mod.main_video_stream
    monkeypatch.setattr(probe_mod, "main_video_stream", lambda c: NoCodec(real(c)))
    for args in (["info", str(mkv)], ["enhance", str(mkv), "-o", str(tmp_path / "o.mp4"), "--device", "cpu"]):
        one_line_exit(CliRunner().invoke(main, args), 3, "att.mkv", "codec is unknown")
    assert not (tmp_path / "o.mp4").exists()


def _can_drop_uid() -> bool:
    import shutil

    return os.geteuid() == 0 and shutil.which("setpriv") is not None


@pytest.mark.skipif(not _can_drop_uid(), reason="needs root and setpriv to drop to another uid")
def test_unreadable_input_is_exit_3_and_unreachable_output_exit_4(shared_dir):
    """A file without read permission and a file in a folder that cannot be entered: exit 3 with one line
    naming the file (not click's exit 2, not a traceback); an output in such a folder, or in a folder
    that cannot be written: exit 4."""
    clip = write_clip(shared_dir / "in.mp4", n=3, audio=False)
    clip.chmod(0o644)
    noread = shared_dir / "noread.mp4"
    noread.write_bytes(clip.read_bytes())
    noread.chmod(0o000)
    locked = shared_dir / "locked"
    locked.mkdir()
    (locked / "in.mp4").write_bytes(clip.read_bytes())
    locked.chmod(0o700)  # root's: uid 65534 cannot enter it
    readonly = shared_dir / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    work = shared_dir / "work"
    work.mkdir()
    work.chmod(0o777)
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "vidrestore"]
    env = {**ENV, "HOME": str(work), "HF_HUB_OFFLINE": "1"}
    cases = []
    for bad in (noread, locked / "in.mp4"):
        cases += [(["info", str(bad)], 3, bad.name), (["enhance", str(bad), "-o", str(work / "o.mp4")], 3, bad.name)]
    for out in (locked / "o.mp4", locked / "sub" / "o.mp4", locked / "frames" / "", readonly / "o.mp4"):
        cases.append((["enhance", str(clip), "-o", str(out)], 4, out.parent.name if out.suffix else out.name))
    for args, code, needle in cases:
        proc = subprocess.run(cmd + args + (["--device", "cpu"] if args[0] == "enhance" else []),
                              capture_output=True, text=True, env=env, timeout=120)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode == code, (args, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("vidrestore: error:"), (args, proc.stderr)
        first = lines[0].replace("permission denied", "Permission denied")
        assert needle in lines[0] and "Permission denied" in first, (args, proc.stderr)
    assert not (work / "o.mp4").exists()


def test_a_0x0_video_is_an_input_error(tmp_path):
    """A video whose container gives no picture size (raw video in AVI with 0x0 in its headers): enhance
    refuses it at once (exit 3), not with the encoder's 'Invalid argument' (exit 2)."""
    import struct

    import av
    import numpy as np

    raw = tmp_path / "raw.avi"
    with av.open(str(raw), "w") as out:
        s = out.add_stream("rawvideo", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    zero = tmp_path / "zero.avi"
    zero.write_bytes(raw.read_bytes().replace(struct.pack("<ii", 64, 48), struct.pack("<ii", 0, 0)))
    with av.open(str(zero)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (0, 0)
    res = CliRunner().invoke(main, ["enhance", str(zero), "-o", str(tmp_path / "o.mp4"), "--device", "cpu"])
    one_line_exit(res, 3, "zero.avi", "has no picture size (0x0)")
    assert not (tmp_path / "o.mp4").exists()


def test_an_unexpected_failure_is_one_line_exit_70_not_a_traceback(clip, tmp_path, monkeypatch):
    """A bug anywhere under a command: one line naming the command, exit 70, no exception text; with
    VIDRESTORE_DEBUG=1 the traceback is there for the report."""
    from vidrestore import plan

    def broken(config):
        raise TypeError("expected str, bytes or os.PathLike object, not dict")

    monkeypatch.setattr(plan, "plan", broken)
    args = ["enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--device", "cpu"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 70, res.output
    line = res.output.strip()
    assert line.startswith("vidrestore: error: 'enhance' failed unexpectedly (TypeError)") and "\n" not in line
    assert "PathLike" not in line and "Traceback" not in res.output
    monkeypatch.setenv("VIDRESTORE_DEBUG", "1")
    res = CliRunner().invoke(main, args)
    assert isinstance(res.exception, TypeError)


def _damage(src: Path, dst: Path, how: str, at: float = 0.45, share: float = 0.10) -> Path:
    """``src`` with ``share`` of its bytes from ``at`` zeroed, or deleted."""
    data = src.read_bytes()
    a = int(len(data) * at)
    b = a + int(len(data) * share)
    dst.write_bytes(data[:a] + bytes(b - a) + data[b:] if how == "zeroed" else data[:a] + data[b:])
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("ext, codec, how", [("webm", "libvpx-vp9", "zeroed"), ("webm", "libvpx-vp9", "cut"),
                                             ("mkv", "libx264", "zeroed"), ("mkv", "libx264", "cut")])
def test_frames_lost_mid_file_are_an_input_error_naming_where(tiny_weights, tmp_path, ext, codec, how):
    """Damage in the middle of a Matroska/WebM file: the demuxer skips it and the frames after it decode
    fine, so nothing failed before, and the output silently lacked frames (exit 0). Now: exit 3 saying
    where frames are missing, nothing written; with --allow-gaps the run goes on and keeps the gap."""
    clean = write_clip(tmp_path / f"clean.{ext}", n=150, size=(160, 96), audio=False, codec=codec)
    src = _damage(clean, tmp_path / f"damaged.{ext}", how)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["enhance", str(src), "-o", str(out_dir / "o.mp4"), "--weights", str(tiny_weights), "--device", "cpu",
            "--threads", "1", "--mode", "interp"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 3, res.output
    assert os.listdir(out_dir) == []
    if "its packets stop after" in res.output:
        # Matroska's (and WebM's) demuxer may not find its way back past the damage: the packets then stop
        # there, the rest of the file unread, and the file is refused as damaged (not as cut short: it is
        # all there). Whether it gets past depends on the bytes the damage meets, and they are not the same
        # on every machine: on one CPU this mkv's demuxer stopped, on CI's it went on.
        assert "is damaged: its header says 5.00 s" in res.output, res.output
        assert "truncated" not in res.output
        return
    assert "frame(s) at 30000/1001 fps are missing between" in res.output and "--allow-gaps" in res.output, res.output
    res = CliRunner().invoke(main, [*args, "--allow-gaps"])
    assert res.exit_code == 0, res.output
    assert "the output keeps the gap" in res.output
    from vidrestore.io.probe import probe

    kept = probe(src, scan=True).frame_count
    # after the damage the decoder may also drop frames whose references it lost: they join the gap
    lost = re.search(r"(\d+) frame\(s\) of \S+ could not be decoded \(--allow-gaps: the output keeps the gap\)",
                     res.output)
    decoded = kept - (int(lost.group(1)) if lost else 0)
    assert kept < 150 and 0 < decoded and probe(out_dir / "o.mp4", scan=True).frame_count == 2 * decoded


def _remux_damaged(src: Path, dst: Path, drop: range, garbled: int) -> Path:
    """``src`` remuxed without the video packets of frames ``drop`` (presentation order), and with random
    bytes in place of frame ``garbled``'s packet: a gap in the timestamps, and a packet the decoder refuses."""
    import av
    import numpy as np

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        packets = [p for p in inp.demux(vin) if p.size]
        order = sorted(p.pts for p in packets)
        for packet in packets:
            j = order.index(packet.pts)
            if j in drop:
                continue
            if j == garbled:
                noise = np.random.default_rng(0).integers(0, 256, packet.size, dtype=np.uint8).tobytes()
                bad = av.Packet(noise)
                bad.pts, bad.dts = packet.pts, packet.dts
                bad.duration, bad.time_base = packet.duration, packet.time_base
                packet = bad
            packet.stream = vout
            out.mux(packet)
    return dst


def test_allow_gaps_also_leaves_out_frames_the_decoder_refuses(tiny_weights, tmp_path):
    """A damaged file often has both: frames missing from its timestamps, and packets after the damage that
    do not decode. --allow-gaps, which the error suggests, went on past the first and then failed on the
    second at the end of the run (exit 3, the work lost). Now the refused frames join the gap, with a note."""
    clean = write_clip(tmp_path / "clean.mkv", n=90, size=(160, 96), audio=False, gop=10)
    src = _remux_damaged(clean, tmp_path / "damaged.mkv", drop=range(30, 40), garbled=62)
    out = tmp_path / "o.mp4"
    args = ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu", "--threads", "1",
            "--mode", "interp"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 3 and "10 frame(s) at 30000/1001 fps are missing between 0.97 s" in res.output, res.output
    assert not out.exists()
    res = CliRunner().invoke(main, [*args, "--allow-gaps"])
    assert res.exit_code == 0, res.output
    assert (f"1 frame(s) of {src} could not be decoded (--allow-gaps: left out, and the output keeps the gap)"
            in res.output)
    from vidrestore.io.probe import probe

    assert probe(out, scan=True).frame_count == 2 * 79
    assert probe(out).duration == pytest.approx(90 * 1001 / 30000, abs=0.05)  # the gaps keep their time


def test_allow_gaps_on_a_constant_rate_input_puts_the_frame_before_in_a_refused_frames_place(tiny_weights, tmp_path):
    """Every timestamp there, one packet garbled (bytes damaged in place): the decoder refuses it, and the
    run failed part-way (exit 3). With --allow-gaps a neighbouring frame stands in for it, so the output keeps
    the exact constant-rate grid: every frame, at its time, the audio still in step."""
    clean = write_clip(tmp_path / "clean.mkv", n=90, size=(160, 96), audio=False, gop=10)
    src = _remux_damaged(clean, tmp_path / "damaged.mkv", drop=range(0), garbled=62)
    out = tmp_path / "o.mp4"
    args = ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu", "--threads", "1",
            "--mode", "interp"]
    res = CliRunner().invoke(main, args)
    one_line_exit(res, 3, "input is corrupt or truncated: the frame at 2.07 s (frame 62) of",
                  "cannot be decoded (", "; --allow-gaps goes on without")
    assert not out.exists()
    res = CliRunner().invoke(main, [*args, "--allow-gaps"])
    assert res.exit_code == 0, res.output
    note = f"1 frame(s) of {src} could not be decoded (--allow-gaps: a neighbouring frame stands in for each)"
    assert note in res.output, res.output
    frames = decode_all(out, "rgb24")
    assert len(frames) == 2 * 90
    step = np.abs(frames[122].astype(int) - frames[120].astype(int)).mean()  # the pattern moves
    held = np.abs(frames[124].astype(int) - frames[122].astype(int)).mean()  # frame 62 is frame 61 again
    assert step > 5 * held, (step, held)
    res = CliRunner().invoke(main, [*args, "--chunks", "3", "--overwrite"])  # a chunk meets the damage
    assert res.exit_code == 3 and "; --allow-gaps goes on without them" in res.output, res.output
    res = CliRunner().invoke(main, [*args, "--allow-gaps", "--chunks", "3", "--overwrite"])  # chunks: one piece
    assert res.exit_code == 0 and "--allow-gaps runs it in one piece" in res.output, res.output
    assert len(decode_all(out)) == 2 * 90


def test_grid_gaps_finds_missing_grid_points_only():
    from vidrestore.io.timing import grid_gaps

    tb = Fraction(1, 1000)  # Matroska's milliseconds: 30000/1001 fps steps of 33 and 34
    pts = [round(j * 1001 / 30) for j in range(40) if not 10 <= j < 20]
    (gap,) = grid_gaps(pts, tb, Fraction(30000, 1001))
    assert gap.missing == 10 and gap.before == Fraction(pts[9], 1000) and gap.after == Fraction(pts[10], 1000)
    assert grid_gaps([round(j * 1001 / 30) for j in range(40)], tb, Fraction(30000, 1001)) == ()  # no gap
    assert grid_gaps([0, 33, 50, 100], tb, Fraction(30000, 1001)) == ()  # off the grid: variable rate


class _StreamWithout:
    """A stream as PyAV gives one it has no decoder parameters for (codec_context None)."""

    codec_context = None

    def __init__(self, stream):
        self._s = stream

    def __getattr__(self, name):
        return getattr(self._s, name)


class _Container:
    """An input container whose audio streams come without a codec context."""

    def __init__(self, container):
        self._c = container

    @property
    def streams(self):
        return [_StreamWithout(s) if s.type == "audio" else s for s in self._c.streams]

    def demux(self, *streams):
        return self._c.demux(*[getattr(s, "_s", s) for s in streams])

    def __getattr__(self, name):
        return getattr(self._c, name)


def test_an_audio_stream_without_decoder_parameters_is_dropped_with_a_note(tiny_weights, tmp_path, monkeypatch):
    """It was `processing failed: AttributeError: 'NoneType' object has no attribute 'sample_rate'`."""
    from vidrestore.io import remux
    from vidrestore.io.probe import probe

    src = write_clip(tmp_path / "in.mkv", n=6, audio=True)
    real = remux.open_input
    monkeypatch.setattr(remux, "open_input", lambda path: _Container(real(path)))
    out = tmp_path / "o.mp4"
    res = CliRunner().invoke(main, ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights),
                                    "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "dropped audio stream #1" in res.output and "parameters are damaged" in res.output
    assert [s.type for s in probe(out).streams] == ["video"]


def test_audio_packets_the_muxer_refuses_are_an_input_error_about_that_stream(tiny_weights, tmp_path, monkeypatch):
    """It was `encoding failed at output frame 1: Invalid argument` (exit 6): the audio was at fault."""
    import av

    from vidrestore.io import remux

    src = write_clip(tmp_path / "in.mp4", n=6, audio=True)

    def refuse(self, side, packet):
        raise av.error.InvalidDataError(22, "Invalid argument")

    monkeypatch.setattr(remux.SideStreams, "_encode_audio", refuse)
    monkeypatch.setattr(remux.SideStreams, "_copy_refusal", lambda self, s: "test: re-encode it")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = CliRunner().invoke(main, ["enhance", str(src), "-o", str(out_dir / "o.mp4"), "--weights",
                                    str(tiny_weights), "--device", "cpu", "--threads", "1"])
    line = one_line_exit(res, 3, "audio stream #1 of", "is damaged", "re-encoded")
    assert "Traceback" not in line and os.listdir(out_dir) == []


def test_frames_too_large_for_memory_are_refused_before_decoding(tmp_path, monkeypatch):
    """16000x16000 frames passed 8 GB before failing: now one line, exit 3, before anything is decoded."""
    from vidrestore import plan as plan_mod

    src = write_clip(tmp_path / "in.mp4", n=3, size=(64, 48), audio=False)
    monkeypatch.setattr(plan_mod, "available_memory", lambda: 64 * 48 * plan_mod.host_bytes_per_pixel(2, 1) - 1)
    res = CliRunner().invoke(main, ["enhance", str(src), "-o", str(tmp_path / "o.mp4"), "--device", "cpu"])
    one_line_exit(res, 3, "frames of 64x48 need about", "GiB is available")
    with pytest.raises(InputError, match="16000x16000"):
        plan_mod.check_host_memory(16000, 16000, 2, 1, available=24 * 2**30)
    plan_mod.check_host_memory(3840, 2160, 8, 1, available=24 * 2**30)  # 4K 8x fits a 24 GiB machine


def test_frames_beyond_4k_run_in_tiles_on_the_cpu(tiny_model, monkeypatch):
    """The model's working memory on a whole frame beyond 4K outgrows ordinary machines: the CPU engine
    tiles such frames (here with the threshold lowered to a small frame)."""
    import numpy as np

    from conftest import make_engine
    from vidrestore import engine as engine_mod

    monkeypatch.setattr(engine_mod, "CPU_WHOLE_FRAME_PIXELS", 64 * 64)
    monkeypatch.setattr(engine_mod, "CPU_TILE", 48)
    eng = make_engine(tiny_model, factor=2, mode="joint")
    frames = [np.full((96, 128, 3), 40 * i, np.uint8) for i in range(3)]
    out = list(eng.process(frames))
    assert len(out) == 6 and eng.stats.planned_tile == 48


def test_a_bug_inside_the_run_is_exit_70_without_its_text_and_leaves_nothing(tiny_weights, clip, tmp_path,
                                                                             monkeypatch):
    """It was `processing failed: KeyError: 'x'` (exit 6): a bug's own text, presented as a processing
    failure. Now exit 70, one line, and the partial output is gone all the same."""
    from vidrestore.engine import Engine

    def broken(self, frames, cuts=None, first=0):
        raise KeyError("internal detail")
        yield  # pragma: no cover

    monkeypatch.setattr(Engine, "process", broken)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = CliRunner().invoke(main, ["enhance", str(clip), "-o", str(out_dir / "o.mp4"), "--weights", str(tiny_weights),
                                    "--device", "cpu", "--threads", "1"])
    one_line_exit(res, 70, "'enhance' failed unexpectedly (KeyError)")
    assert "internal detail" not in res.output and os.listdir(out_dir) == []


def test_available_memory_reads_the_process_own_cgroup_and_its_address_space_limit(tmp_path, monkeypatch):
    import resource

    import vidrestore.plan as plan_mod

    proc, cg = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 100000000 kB\nMemAvailable: 50000000 kB\n")
    (proc / "self" / "status").write_text("Name: x\nVmSize:   1000000 kB\n")
    gib = 2**30
    # cgroup v1: the process's own group (not the root's) holds the limit
    (proc / "self" / "cgroup").write_text("12:cpu,cpuacct:/a\n7:memory:/jobs/42\n0::/\n")
    own = cg / "memory" / "jobs" / "42"
    own.mkdir(parents=True)
    (own / "memory.limit_in_bytes").write_text(str(4 * gib))
    (own / "memory.usage_in_bytes").write_text(str(gib))
    (cg / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712")
    (cg / "memory" / "memory.usage_in_bytes").write_text("0")
    monkeypatch.setattr(resource, "getrlimit", lambda what: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert plan_mod.available_memory(proc, cg) == 3 * gib
    # cgroup v2: its own group's memory.max
    (proc / "self" / "cgroup").write_text("0::/user.slice/run-1.scope\n")
    v2 = cg / "user.slice" / "run-1.scope"
    v2.mkdir(parents=True)
    (v2 / "memory.max").write_text(str(2 * gib))
    (v2 / "memory.current").write_text(str(gib // 2))
    assert plan_mod.available_memory(proc, cg) == gib + gib // 2
    (v2 / "memory.max").write_text("max")
    assert plan_mod.available_memory(proc, cg) == 50000000 * 1024
    # ulimit -v: what is left of the address space after what the process has mapped (1,000,000 kB)
    monkeypatch.setattr(resource, "getrlimit", lambda what: (12 * gib, resource.RLIM_INFINITY))
    assert plan_mod.available_memory(proc, cg) == 12 * gib - 1000000 * 1024


@pytest.mark.parametrize("make", [
    lambda: __import__("cv2").error("OpenCV(4.10.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate "
                                    "268435456 bytes in function 'OutOfMemoryError'"),
    lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                         "you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)"),
    lambda: MemoryError(),
])
def test_running_out_of_memory_anywhere_is_exit_6_with_the_advice(clip, tmp_path, monkeypatch, make):
    """torch's CPU allocator, OpenCV (the DIS flow of a huge frame) or Python itself: the machine, not a bug."""
    from vidrestore import plan

    def exhausted(config):
        raise make()

    monkeypatch.setattr(plan, "plan", exhausted)
    res = CliRunner().invoke(main, ["enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--device", "cpu"])
    assert res.exit_code == 6, res.output
    line = res.output.strip()
    assert line.startswith("vidrestore: error: out of memory: try a smaller --batch or --tile") and "\n" not in line
    assert not (tmp_path / "o.mp4").exists()


def test_an_interrupt_inside_a_locks_bookkeeping_is_exit_130_not_a_model_failure(tiny_weights, clip, tmp_path,
                                                                                  monkeypatch):
    """Ctrl-C landing inside a condition's wait (the engine waiting for a flow) comes out of threading as
    RuntimeError("release unlocked lock") with the KeyboardInterrupt as its context: that is the interrupt
    (exit 130, nothing written), not "the model failed" (exit 6)."""
    from vidrestore.engine import Engine

    def interrupted_in_a_lock(self, *args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("release unlocked lock")  # noqa: B904 (as threading raises it: no cause)
        yield  # a generator, as process() is

    monkeypatch.setattr(Engine, "process", interrupted_in_a_lock)
    out = tmp_path / "out"
    out.mkdir()
    res = CliRunner().invoke(main, ["enhance", str(clip), "-o", str(out / "o.mp4"), "--weights", str(tiny_weights),
                                    "--device", "cpu"])
    assert res.exit_code == 130, res.output
    assert res.output.strip().splitlines()[-1] == "vidrestore: error: interrupted; no output was written"
    assert os.listdir(out) == []


def _avi(path: Path, pts: list[int]) -> Path:
    """An MJPEG AVI at 25 fps with a frame at each of ``pts``: where they skip a slot, the muxer writes a
    zero-byte "drop" chunk (the previous frame stays on screen), which the index counts."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (40 + 3 * i) % 255, np.uint8), format="rgb24")
            frame.pts = p
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_frames_cut_from_the_middle_of_an_avi_are_not_lost_silently(tiny_weights, tmp_path):
    """An AVI whose index lists 60 frames with 10 of them cut out of its data: it decodes as 50 frames with
    gapless timestamps. It used to give exit 0 and 100 frames (the index's count was lowered to what the scan
    found, a rule meant for drop chunks). Now exit 3, and with --allow-gaps a note that says what is missing."""
    import av

    full = _avi(tmp_path / "full.avi", list(range(60)))
    with av.open(str(full)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = full.read_bytes()
    (first, _), (last, size) = packets[20], packets[29]
    src = tmp_path / "damaged.avi"
    src.write_bytes(data[:first - 8] + data[last + size + (size & 1):])  # chunks 20-29, headers included
    out = tmp_path / "o.mp4"
    args = ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu", "--threads", "1",
            "--mode", "interp"]
    res = CliRunner().invoke(main, args)
    one_line_exit(res, 3, f"input is damaged: its index lists 60 video frames but 10 of them are not in {src}; "
                          "--allow-gaps goes on without them")
    assert not out.exists()
    res = CliRunner().invoke(main, [*args, "--allow-gaps"])
    assert res.exit_code == 0, res.output
    assert f"10 frame(s) of {src} could not be decoded (--allow-gaps: left out: the file's timestamps close up" \
        in res.output
    assert len(decode_all(out)) == 100
    res = CliRunner().invoke(main, ["info", "--json", str(src)])
    report = json.loads(res.stdout)
    assert (report["damaged"], report["missing_frames"], report["index_frames"]) == (True, 10, 60)


def test_drop_chunks_of_an_avi_are_slots_not_lost_frames(tiny_weights, tmp_path):
    """Timestamps that skip slots where the index holds zero-byte chunks: the file is whole, nothing is lost."""
    src = _avi(tmp_path / "drops.avi", [0, 1, 2, 5, 6, 7, 8, 9])
    from vidrestore.io.probe import probe

    info = probe(src)
    assert (info.index_frames, info.frame_count, info.skipped_slots) == (10, 8, 2)
    res = CliRunner().invoke(main, ["enhance", str(src), "-o", str(tmp_path / "o.mkv"), "--weights", str(tiny_weights),
                                    "--device", "cpu", "--threads", "1", "--mode", "interp"])
    assert res.exit_code == 0, res.output


def test_a_matroska_timestamp_that_goes_back_is_damage_not_a_frame_to_renumber(tiny_weights, tmp_path):
    """Frame 5's block stamped with frame 7's time: decoded times 0.16, 0.28, 0.24, 0.28 s. They used to be
    renumbered (each "previous + 1") and the run gave exit 0 with two frames out of place. Now exit 3; with
    --allow-gaps the two frames whose times repeat or go back are left out, with a note."""
    import av

    clean = write_clip(tmp_path / "clean.mkv", n=10, size=(64, 48), audio=False, rate=Fraction(25), gop=1)
    with av.open(str(clean)) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(clean.read_bytes())
    data[pos[5] + 1:pos[5] + 3] = data[pos[7] + 1:pos[7] + 3]  # the block's timecode (after its track number)
    src = tmp_path / "back.mkv"
    src.write_bytes(bytes(data))
    out = tmp_path / "o.mp4"
    args = ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu", "--threads", "1",
            "--mode", "interp"]
    res = CliRunner().invoke(main, args)
    one_line_exit(res, 3, f"input is damaged: its timestamps go back at frame 6 of {src} (0.240 s after 0.280 s)")
    assert not out.exists()
    res = CliRunner().invoke(main, [*args, "--allow-gaps"])
    assert res.exit_code == 0, res.output
    assert f"2 frame(s) of {src} were left out: their timestamps repeat or go back" in res.output
    assert len(decode_all(out)) == 16


def test_an_avi_that_lost_its_header_or_gained_frames_is_damaged(tiny_weights, tmp_path):
    """Two ways a damaged AVI ran with exit 0 and the wrong frames: its header zeroed, FFmpeg read the rest as
    a bare MJPEG stream (one frame, or all of them at guessed times); two chunks copied again, it held 62
    frames where its index lists 60. Both are refused (exit 3), and `info` says why."""
    import av

    full = _avi(tmp_path / "full.avi", list(range(60)))
    data = full.read_bytes()
    headless = tmp_path / "headless.avi"
    headless.write_bytes(bytes(64) + data[64:])
    with av.open(str(full)) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size]
    a, b = pos[10] - 8, pos[12] - 8
    doubled = tmp_path / "doubled.avi"
    doubled.write_bytes(data[:b] + data[a:b] + data[b:])
    for src, needle in ((headless, "is damaged: its AVI structure cannot be read, only a raw mjpeg stream"),
                        (doubled, "its index lists 60 video frames but")):
        out = tmp_path / f"{src.stem}.mp4"
        res = CliRunner().invoke(main, ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights),
                                        "--device", "cpu", "--threads", "1", "--mode", "interp"])
        one_line_exit(res, 3, needle)
        assert not out.exists()
    res = CliRunner().invoke(main, ["info", "--json", str(doubled)])
    report = json.loads(res.stdout)
    assert (report["damaged"], report["surplus_frames"]) == (True, 2)


def test_a_matroska_file_with_a_broken_structure_and_no_duration_is_damaged(tiny_weights, tmp_path):
    """Part of the first cluster swapped into the header (a fuzz mutant): FFmpeg skips the broken part with errors
    and reads 6 of the 12 frames, and the file has no duration to show the loss. The demuxer's errors are the
    evidence: exit 3 naming the damage, nothing written; `info` warns."""
    src = Path(__file__).parent / "assets" / "damaged" / "swapped_clusters.webm"
    info = probe(src, scan=True)
    assert info.broken_structure and info.frame_count == 6 and info.container_duration is None
    assert info.to_json_dict()["damaged"]
    out = tmp_path / "o.mp4"
    res = CliRunner().invoke(main, ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights),
                                    "--device", "cpu", "--mode", "interp"])
    one_line_exit(res, 3, "is damaged: its structure is broken where FFmpeg reads it (",
                  "and it has no duration to tell which frames are missing; copy or download it again")
    assert not out.exists()
    res = CliRunner().invoke(main, ["info", str(src)])
    assert res.exit_code == 0 and "warning:" in res.output and "structure is broken" in res.output
    clean = probe(write_clip(tmp_path / "clean.webm", n=12, codec="libvpx-vp9", audio=False), scan=True)
    assert clean.broken_structure is None and clean.frame_count == 12
