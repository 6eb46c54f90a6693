"""Bad input: one clear line on stderr, a distinct exit code, no traceback, nothing left behind,
and the input never modified."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import moving_pattern
from vidrestore.cli import main
from vidrestore.config import EnhanceConfig
from vidrestore.errors import OutputError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture
def cli(tiny_weights):
    def _run(*args: str):
        # no plain progress lines (stderr is no terminal here) before an error found part-way: these tests read the
        # error line; the progress lines are test_first_hour's
        res = CliRunner(env={"VIDRESTORE_PROGRESS_INTERVAL": "3600"}).invoke(
            main, ["enhance", *map(str, args), "--weights", str(tiny_weights), "--device", "cpu"])
        return res

    return _run


def assert_one_line_error(res, code: int, pattern: str) -> None:
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("vidrestore: error: ")
    assert pattern.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in res.output
    assert res.stdout == ""


@pytest.fixture
def clip(make_clip):
    return make_clip(n=4)


def test_missing_input(cli, tmp_path):
    res = cli(tmp_path / "nope.mp4", "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 3, "input not found")
    assert listing(tmp_path) == []


def test_directory_input(cli, tmp_path):
    (tmp_path / "d").mkdir()
    res = cli(tmp_path / "d", "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 3, "directory")


def test_not_a_video(cli, tmp_path):
    src = tmp_path / "notes.mp4"
    src.write_text("this is not a video\n" * 50)
    before = digest(src)
    res = cli(src, "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 3, "not a readable video")
    assert listing(tmp_path) == ["notes.mp4"] and digest(src) == before


@pytest.mark.parametrize("name", ["readme.txt", "notes.mp4", "README"])
def test_text_that_ffmpeg_would_draw_is_not_video(cli, tmp_path, name):
    """FFmpeg's tty demuxer draws any text file as ANSI art: such a file is refused, whatever its name."""
    src = tmp_path / name
    src.write_text("# A project\n\nSome words about it, and more words.\n" * 40)
    res = cli(src, "-o", tmp_path / "out.mp4")
    assert res.exit_code == 3, res.output
    assert "not a" in res.stderr and "video" in res.stderr
    assert listing(tmp_path) == [name]


def test_a_folder_into_a_file_name_is_a_usage_error(cli, tmp_path, clip):
    videos = tmp_path / "videos"
    videos.mkdir()
    os.replace(clip, videos / "a.mp4")
    res = cli(videos, "-o", tmp_path / "out" / "videos.mp4")
    assert_one_line_error(res, 2, "must be a folder")
    assert str(videos) in res.stderr and "videos.mp4" in res.stderr
    assert not (tmp_path / "out").exists()


def test_no_video_stream(cli, tmp_path):
    import av
    import numpy as np

    src = tmp_path / "sound.m4a"
    with av.open(str(src), "w") as out:
        a = out.add_stream("aac", rate=48000)
        for i in range(5):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 48000, i * 1024
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    res = cli(src, "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 3, "no video stream")
    assert listing(tmp_path) == ["sound.m4a"]


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_zero_decodable_frames(cli, make_clip, tmp_path, codec):
    import av

    src = make_clip("blank.mkv", moving_pattern(5, 32, 32), codec=codec, audio=False)
    with av.open(str(src)) as c:
        spans = [(pk.pos, pk.size) for pk in c.demux(video=0) if pk.size]
    data = bytearray(src.read_bytes())
    for pos, size in spans:  # every video packet's payload zeroed: a valid file, no decodable frame
        data[pos:pos + size] = bytes(size)
    src.write_bytes(bytes(data))
    res = cli(src, "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 3, "no decodable video frames")
    assert listing(tmp_path) == ["blank.mkv"]


@pytest.mark.parametrize("name,options", [("cut.mkv", None), ("cut.mp4", {"movflags": "faststart"})])
def test_truncated_input_names_the_frame(cli, make_clip, tmp_path, name, options):
    src = make_clip(name, moving_pattern(40, 48, 32), options=options)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) * 6 // 10])
    before = digest(src)
    res = cli(src, "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 3, "frame")
    assert "truncated" in res.stderr or "corrupt" in res.stderr
    assert listing(tmp_path) == [name] and digest(src) == before


def test_output_exists_without_overwrite(cli, clip, tmp_path):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"keep me")
    res = cli(clip, "-o", dst)
    assert_one_line_error(res, 4, "--overwrite")
    assert dst.read_bytes() == b"keep me" and listing(tmp_path) == ["in.mp4", "out.mp4"]


def test_output_is_input(cli, clip, tmp_path):
    before = digest(clip)
    res = cli(clip, "-o", clip, "--overwrite")
    assert_one_line_error(res, 2, "same file")
    res = cli(clip, "-o", tmp_path / "." / "in.mp4", "--overwrite")
    assert_one_line_error(res, 2, "same file")
    assert digest(clip) == before and listing(tmp_path) == ["in.mp4"]


def test_output_dir_not_writable(cli, clip, tmp_path):
    if os.geteuid() == 0:  # root writes anywhere a mode allows; sysfs refuses even root
        target = Path("/sys/vidrestore-test-out.mp4")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "out.mp4"
    res = cli(clip, "-o", target)
    assert_one_line_error(res, 4, "cannot write")
    assert not target.exists() and listing(tmp_path) in (["in.mp4"], ["in.mp4", "ro"])


def test_output_dir_missing(cli, clip, tmp_path):
    res = cli(clip, "-o", tmp_path / "no" / "out.mp4")
    assert_one_line_error(res, 4, "does not exist")


@pytest.mark.parametrize("args,pattern", [
    (["--codec", "nosuchcodec"], "unknown codec"),
    (["--codec", "aac"], "not a video encoder"),
    (["--fps-x", "0"], "--fps-x 0 is out of range"),
    (["--fps-x", "17"], "--fps-x 17 is out of range"),
    (["--fps-x", "two"], "--fps-x"),
    (["--mode", "fast"], "--mode"),
    (["--scene-threshold", "0"], "--scene-threshold"),
    (["--preset", "warp-speed"], "--preset"),
])
def test_bad_options(cli, clip, tmp_path, args, pattern):
    res = cli(clip, "-o", tmp_path / "out.mp4", *args)
    assert_one_line_error(res, 2, pattern)
    assert listing(tmp_path) == ["in.mp4"]


@pytest.mark.parametrize("name,pattern", [("out.xyz", "unknown output container"), ("out.webm", "cannot hold")])
def test_unknown_or_unfit_container(cli, clip, tmp_path, name, pattern):
    res = cli(clip, "-o", tmp_path / name, "--codec", "libx264")  # webm's own default is AV1 or VP9
    assert_one_line_error(res, 2, pattern)
    assert listing(tmp_path) == ["in.mp4"]


def test_disk_full_is_an_output_error(cli, clip, tmp_path, monkeypatch):
    """The temp file is a link to /dev/full, so every real write fails with ENOSPC."""
    import vidrestore.io.files as files

    link = tmp_path / ".out.full.partial.mp4"

    def full_temp(target: Path) -> Path:
        link.symlink_to("/dev/full")
        return link

    monkeypatch.setattr(files, "create_temp", full_temp)
    res = cli(clip, "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 4, "disk full")
    assert listing(tmp_path) == ["in.mp4"]  # the link was removed, no output


def test_ctrl_c_removes_the_temp_file(cli, clip, tmp_path, monkeypatch):
    import vidrestore.engine as engine

    real = engine.Engine.process

    def interrupted(self, frames, cuts=None, first=0):
        for n, out in enumerate(real(self, frames, cuts)):
            if n == 3:
                raise KeyboardInterrupt
            yield out

    monkeypatch.setattr(engine.Engine, "process", interrupted)
    before = digest(clip)
    res = cli(clip, "-o", tmp_path / "out.mp4")
    assert_one_line_error(res, 130, "interrupted")
    assert listing(tmp_path) == ["in.mp4"] and digest(clip) == before


def test_pipeline_failure_midway_leaves_nothing(tiny_model, clip, tmp_path):
    from vidrestore.pipeline import run

    def boom(progress):
        raise OutputError("stop here")

    with pytest.raises(OutputError):
        run(EnhanceConfig(input=clip, output=tmp_path / "out.mp4"), progress=boom, model=tiny_model,
            device=torch.device("cpu"), dtype=torch.float32)
    assert listing(tmp_path) == ["in.mp4"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_mid_run_removes_the_partial_output(tmp_path):
    """`kill` / `docker stop` during encoding: exit 130, one line, nothing left behind."""
    import signal
    import subprocess
    import sys
    import time

    import vidrestore

    example = Path(vidrestore.__file__).parent / "assets" / "example.mp4"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "vidrestore", "enhance", str(example), "-o",
                             str(out_dir / "x8.mp4"), "--fps-x", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # wait until the encoder has written bytes to the temporary file
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > 0 for p in out_dir.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines[-1].startswith("vidrestore: error: interrupted") and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_cli_leaves_ffmpeg_logging_off(make_clip):
    """enhance/info silence FFmpeg with PyAV's no-op log callback (level None), never with a numeric
    level: those install a callback that still takes the GIL for ERROR lines, and a threaded decoder
    freed by the main thread can then deadlock (seen as a hung test run)."""
    import av.logging

    av.logging.set_level(av.logging.PANIC)  # what quiet_ffmpeg used to set
    try:
        res = CliRunner().invoke(main, ["info", str(make_clip())])
        assert res.exit_code == 0, res.output
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)


def test_an_unknown_precision_is_one_line_before_any_work(cli, make_clip, tmp_path):
    """--precision is checked in one place (config.check_precision), for enhance as for a training recipe."""
    from vidrestore.config import check_precision
    from vidrestore.errors import UsageError

    src = make_clip(n=3)
    res = cli(src, "-o", tmp_path / "o.mp4", "--precision", "fp64")
    assert_one_line_error(res, 2, "--precision 'fp64': expected one of auto, fp32, fp16, bf16")
    assert not (tmp_path / "o.mp4").exists()
    assert check_precision("bf16") == "bf16"
    with pytest.raises(UsageError, match="expected one of"):
        check_precision("FP32")


def test_an_interrupted_train_says_what_it_kept(monkeypatch):
    """Ctrl-C in `vidrestore train` says the run is checkpointed; in `--fill-cache`, that the cache keeps its
    complete shards (a filler has no checkpoint)."""
    from vidrestore.cli import _interrupted

    monkeypatch.setattr("sys.argv", ["vidrestore", "train", "--recipe", "r.toml", "--out", "run"])
    assert "checkpointed" in str(_interrupted("train"))
    monkeypatch.setattr("sys.argv", ["vidrestore", "train", "--recipe", "r.toml", "--out", "run", "--fill-cache"])
    message = str(_interrupted("train"))
    assert "complete shard" in message and "checkpointed" not in message
