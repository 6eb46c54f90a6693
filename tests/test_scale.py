"""Folders, chunks, workers and resume (vidrestore.scale): a chunked run gives the frames, timestamps and
duration of a run in one piece (bit-identical frames with a lossless codec), on this process or on a local
Ray of two workers; a killed worker or driver loses no output; a folder with a bad file finishes the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import decode_all, moving_pattern, packet_times, write_clip
from vidrestore import runtime
from vidrestore.config import EnhanceConfig, RunOptions
from vidrestore.io.index import FrameIndex, frame_index
from vidrestore.scale import chunks as ch
from vidrestore.config import ScaleOptions
from vidrestore.scale.batch import enhance_all
from vidrestore.scale.manifest import job_dir
from vidrestore.scale.pool import LocalPool

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "VIDRESTORE_PROGRESS_INTERVAL": "0"}
HAVE_RAY = __import__("importlib").util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'vidrestore[ray]')")

CUT = 40  # the scene cut, on a key frame (every 8th) and so on a chunk boundary


def cut_frames(n: int = 64) -> list[np.ndarray]:
    a = moving_pattern(CUT, 96, 64)
    b = [f // 4 for f in moving_pattern(n - CUT, 96, 64, seed=3)]  # a dark scene: a clear cut
    return a + b


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("scale") / "cut.mp4", cut_frames(), gop=8)


@pytest.fixture(scope="module")
def pool(tiny_model):
    rt = runtime.load(RunOptions(), model=tiny_model, device=torch.device("cpu"), dtype=torch.float32)
    return LocalPool(EnhanceConfig(input="x.mp4", output="y.mp4"), loaded=rt)


def config(src: Path, out: Path, **kw) -> EnhanceConfig:
    codec = {"mkv": "ffv1", "mp4": "libx264"}[out.suffix[1:]]
    extra = {"crf": 0} if codec == "libx264" else {}  # x264 at qp 0: lossless
    return EnhanceConfig(input=src, output=out, factor=2, codec=codec, **extra, **kw)


def assert_same_video(a: Path, b: Path) -> None:
    import av

    fa, fb = decode_all(a, "rgb24"), decode_all(b, "rgb24")
    assert len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert packet_times(a)[0] == packet_times(b)[0]  # every video timestamp
    assert packet_times(a, "audio")[0] == packet_times(b, "audio")[0]
    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        assert ca.duration == cb.duration
        assert [s.type for s in ca.streams] == [s.type for s in cb.streams]
        assert ca.streams.video[0].time_base == cb.streams.video[0].time_base


def test_chunks_start_at_key_frames_and_prefer_scene_cuts():
    pts = tuple(range(0, 3000, 10))
    # key frames every 50 frames, and an encoder's early one at 130 (a scene cut)
    index = FrameIndex(pts, (0, 50, 100, 130, 180, 230, 280), 3000)
    assert ch.scene_cut_keyframes(index) == {130}
    chunks = ch.plan_chunks(index, 2)
    assert [(c.start, c.stop) for c in chunks] == [(0, 130), (130, 300)]  # 150 is ideal: the cut at 130 wins
    chunks = ch.plan_chunks(index, 6)
    assert all(c.start in index.keyframes for c in chunks)
    assert sum(c.frames for c in chunks) == 300 and chunks[0].start == 0 and chunks[-1].stop == 300
    single_key = FrameIndex(pts, (0,), 3000)  # no key frame near: the chunks start where they should
    assert [(c.start, c.stop) for c in ch.plan_chunks(single_key, 4)] == [(0, 75), (75, 150), (150, 225), (225, 300)]
    assert ch.span_of(single_key, ch.Chunk(2, 150, 225)).seek == 0  # decoded from the key frame before it
    span = ch.span_of(index, chunks[1])
    assert span.first == chunks[1].start - 1 and span.stop == chunks[1].stop + 2  # the halo
    assert span.seek <= index.pts[span.first] and span.pts == index.pts[span.first:span.stop]


def test_frame_index_reads_every_frame_and_key_frame(clip):
    index = frame_index(clip, 0)
    assert index is not None and len(index) == 64
    assert index.keyframes == tuple(range(0, 64, 8))


@pytest.mark.slow
@pytest.mark.parametrize("ext, k, mode", [("mkv", 8, "joint"), ("mp4", 2, "joint"), ("mkv", 2, "joint"),
                                          ("mp4", 4, "interp")])
def test_chunked_output_is_the_single_run_output(pool, clip, tmp_path, ext, k, mode):
    single = tmp_path / f"single.{ext}"
    whole, = enhance_all([config(clip, single, mode=mode)], ScaleOptions(chunks=1), pool=pool)
    assert whole.status == "done", whole.message
    out = tmp_path / f"chunked.{ext}"
    notes: list[str] = []
    result, = enhance_all([config(clip, out, mode=mode)], ScaleOptions(chunks=k), pool=pool, notes=notes.append)
    assert result.status == "done", result.message
    assert not [n for n in notes if "piece" in n or "chunks (" in n], notes  # it did run in k chunks
    assert result.summary.frames_out == 128 and result.summary.scene_cuts == whole.summary.scene_cuts == 1
    assert_same_video(single, out)
    assert sorted(os.listdir(tmp_path)) == sorted([single.name, out.name])  # no job folder, no chunk left


def test_a_variable_rate_input_chunks_alike(pool, tmp_path):
    """Timestamps that follow a variable-rate input (no constant grid) come out the same in chunks."""
    rng = np.random.default_rng(0)
    pts = np.cumsum(rng.integers(2, 5, size=48)).tolist()
    src = write_clip(tmp_path / "vfr.mkv", moving_pattern(48, 96, 64), pts=[p - pts[0] for p in pts],
                     time_base=Fraction(1, 90), gop=8)
    single, out = tmp_path / "single.mkv", tmp_path / "chunked.mkv"
    whole, = enhance_all([config(src, single)], ScaleOptions(chunks=1), pool=pool)
    assert whole.status == "done" and whole.summary.variable_rate, whole.message
    notes: list[str] = []
    result, = enhance_all([config(src, out)], ScaleOptions(chunks=4), pool=pool, notes=notes.append)
    assert result.status == "done", result.message
    assert not [n for n in notes if "piece" in n or "chunks (" in n], notes  # it did run in 4 chunks
    assert_same_video(single, out)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_done_chunks(tiny_weights, clip, tmp_path):
    """kill -9 of the whole job half way: the rerun reuses the finished chunks (it says so) and its
    output is an uninterrupted run's."""
    out = tmp_path / "out.mkv"
    cmd = [sys.executable, "-m", "vidrestore", "enhance", str(clip), "-o", str(out), "--weights", str(tiny_weights),
           "--device", "cpu", "--threads", "1", "--codec", "ffv1", "--chunks", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    manifest = job_dir(out) / "manifest.json"
    deadline = time.monotonic() + 240
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            done = len(json.loads(manifest.read_text())["done"])
        except (OSError, ValueError, KeyError):
            done = 0
        if done >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    proc.kill()
    proc.wait()
    assert not out.exists() and manifest.exists()
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming out.mkv:" in again.stderr and "of 8 chunks" in again.stderr
    assert not job_dir(out).exists()
    single = tmp_path / "single.mkv"
    subprocess.run([*cmd[:6], str(single), *cmd[7:-2], "--chunks", "1"], check=True, capture_output=True, env=ENV)
    assert_same_video(single, out)


def test_changed_options_start_over(pool, clip, tmp_path):
    from vidrestore.errors import OutputError
    from vidrestore.scale.manifest import Job, input_identity, output_options

    out = tmp_path / "out.mkv"
    cfg, interp = output_options(config(clip, out), "w"), output_options(config(clip, out, mode="interp"), "w")
    chunks = ch.plan_chunks(frame_index(clip, 0), 4)

    def reopen(options, notes):
        return Job.open(out, input_identity(clip), options, chunks, notes.append)

    job = reopen(cfg, [])
    with pytest.raises(OutputError, match="another vidrestore run is writing"):
        reopen(cfg, [])  # the folder is held while its run lives
    job.chunk_path(0).write_bytes(b"x" * 10)
    job.mark_done(0, 20, ((0, 0, 1),))
    job.release()
    notes: list[str] = []
    again = reopen(cfg, notes)
    assert list(again.done) == [0] and notes and notes[0].startswith("resuming out.mkv: 1 of 4 chunks")
    again.release()
    notes.clear()
    other = reopen(interp, notes)
    assert other.done == {} and notes == ["out.mkv: the options changed since the interrupted run: starting over"]
    assert not job.chunk_path(0).exists()
    other.chunk_path(1).write_bytes(b"y")
    other.mark_done(1, 20, ((0, 0, 1),))
    other.release()
    st = clip.stat()
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the input was touched
    notes.clear()
    last = reopen(interp, notes)
    assert notes == ["out.mkv: the input changed since the interrupted run: starting over"]
    last.remove()
    assert not job_dir(out).exists()


def test_workers_without_ray_name_the_extra(tiny_weights, clip, tmp_path):
    code = ("import sys, importlib.util as u; real = u.find_spec; "
            "u.find_spec = lambda name, *a: None if name == 'ray' else real(name, *a); "
            "from vidrestore.cli import main; sys.argv = ['vidrestore', 'enhance', sys.argv[1], '-o', sys.argv[2], "
            "'--workers', '2']; main()")
    r = subprocess.run([sys.executable, "-c", code, str(clip), str(tmp_path / "o.mp4")], capture_output=True, text=True,
                       env=ENV, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("vidrestore: error: --workers above 1 and --ray run on Ray, which is not installed: "
                                "pip install 'vidrestore[ray]'")
    assert os.listdir(tmp_path) == []


# -- a local Ray of two workers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_pool(tiny_weights):
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'vidrestore[ray]')")
    from vidrestore.scale.pool import RayPool

    cfg = EnhanceConfig(input="x.mp4", output="y.mp4", run=RunOptions(weights=str(tiny_weights), device="cpu"))
    p = RayPool(cfg, 2, per_worker=1)
    yield p
    p.stop()


@pytest.mark.slow
@needs_ray
def test_two_ray_workers_give_the_single_run_output(ray_pool, pool, tiny_weights, clip, tmp_path):
    run = RunOptions(weights=str(tiny_weights), device="cpu")
    single = tmp_path / "single.mkv"
    enhance_all([config(clip, single)], ScaleOptions(chunks=1), pool=pool)
    out = tmp_path / "ray.mkv"
    result, = enhance_all([config(clip, out, run=run)], ScaleOptions(workers=2, chunks=8), pool=ray_pool)
    assert result.status == "done", result.message
    assert_same_video(single, out)


@pytest.mark.slow
@needs_ray
def test_a_worker_killed_mid_job_is_replaced(ray_pool, pool, tiny_weights, tmp_path):
    """SIGKILL of one of the two workers while it runs a chunk: a new worker runs that chunk again and the
    output is the uninterrupted one."""
    src = write_clip(tmp_path / "long.mp4", moving_pattern(160, 96, 64), gop=16)
    run = RunOptions(weights=str(tiny_weights), device="cpu")
    single = tmp_path / "single.mkv"
    enhance_all([config(src, single)], ScaleOptions(chunks=1), pool=pool)
    victim = ray_pool.pids()[0]
    killed = []

    def progress(p):
        if not killed and p.frames_out > 0:
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    out = tmp_path / "ray.mkv"
    result, = enhance_all([config(src, out, run=run)], ScaleOptions(workers=2, chunks=10), pool=ray_pool,
                          progress=progress)
    assert killed and result.status == "done", result.message
    assert victim not in ray_pool.pids()
    assert_same_video(single, out)


@pytest.mark.slow
@needs_ray
def test_a_folder_with_a_corrupt_file_finishes_the_others(tiny_weights, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_clip(src / "a.mp4", moving_pattern(12, 64, 48))
    write_clip(src / "sub" / "b.mkv", moving_pattern(10, 64, 48, seed=2))
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vidrestore", "enhance", str(src), "-o", str(out), "--recursive",
           "--weights", str(tiny_weights), "--device", "cpu", "--workers", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "2 done, 1 failed, 0 skipped of 3 videos"
    assert any(line.startswith("broken.mp4: failed: ") for line in r.stderr.splitlines()), r.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.mp4", "sub/b.mkv"]
    assert len(decode_all(out / "a.mp4")) == 24 and len(decode_all(out / "sub" / "b.mkv")) == 20
    again = subprocess.run(cmd[:-2] + ["--workers", "1"], capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 3
    assert again.stderr.strip().splitlines()[-1] == "0 done, 1 failed, 2 skipped of 3 videos"


def test_a_folder_of_one_video_counts_one_video(tiny_weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "a.mp4", moving_pattern(6, 64, 48))
    cmd = [sys.executable, "-m", "vidrestore", "enhance", str(src), "-o", str(tmp_path / "out"),
           "--weights", str(tiny_weights), "--device", "cpu", "--workers", "1", "--mode", "interp"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "1 done, 0 failed, 0 skipped of 1 video"


@pytest.mark.slow
@needs_ray
def test_ctrl_c_stops_the_workers_and_leaves_nothing(tiny_weights, tmp_path):
    src = write_clip(tmp_path / "in.mp4", moving_pattern(240, 160, 96), gop=24)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "o.mkv"
    cmd = [sys.executable, "-m", "vidrestore", "enhance", str(src), "-o", str(out), "--weights", str(tiny_weights),
           "--device", "cpu", "--workers", "2", "--chunks", "8", "--codec", "ffv1"]

    def chunk_written() -> bool:
        folder = job_dir(out)
        return folder.exists() and any(p.name.endswith(".mkv") and p.stat().st_size > 0 for p in folder.iterdir())

    err = _interrupt_when(cmd, chunk_written)
    assert err.strip().splitlines()[-1] == "vidrestore: error: interrupted; no output was written", err
    assert os.listdir(out_dir) == []


def _ray_sessions() -> set[str]:
    """Ray session folders on this machine: Ray's default place, and the ones our local Rays make."""
    import glob

    return set(glob.glob("/tmp/ray/session_2*")) | set(glob.glob("/tmp/vidrestore-ray-*"))


def _interrupt_when(cmd: list[str], ready) -> str:
    """Run ``cmd``, send SIGINT once ``ready()`` holds; it must exit 130 and leave no Ray session folder behind.
    Returns its stderr."""
    sessions = _ray_sessions()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert _ray_sessions() <= sessions, sorted(_ray_sessions() - sessions)
    return err


@pytest.mark.slow
@needs_ray
def test_ctrl_c_on_a_folder_with_two_workers_leaves_no_partial_files(tiny_weights, tmp_path):
    """Workers writing whole files are killed on Ctrl-C: their hidden partial files go with them."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        write_clip(src / f"v{i}.mp4", moving_pattern(400, 160, 96, seed=i))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vidrestore", "enhance", str(src), "-o", str(out), "--weights", str(tiny_weights),
           "--device", "cpu", "--workers", "2", "--chunks", "1", "--fps-x", "2", "--mode", "interp"]
    _interrupt_when(cmd, lambda: out.exists() and any(".partial." in p.name and p.stat().st_size > 0
                                                      for p in out.iterdir()))
    assert not out.exists() or os.listdir(out) == [], os.listdir(out)


@needs_ray
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_each_ray_worker_gets_a_gpu(tiny_weights, clip, tmp_path):
    from vidrestore.runtime import gpu_count
    from vidrestore.scale.pool import RayPool

    n = gpu_count()
    cfg = EnhanceConfig(input="x.mp4", output="y.mp4", run=RunOptions(weights=str(tiny_weights)))
    ray_pool = RayPool(cfg, n)
    try:
        out = tmp_path / "gpu.mkv"
        result, = enhance_all([config(clip, out, run=cfg.run)], ScaleOptions(workers=n, chunks=4), pool=ray_pool)
    finally:
        ray_pool.stop()
    assert result.status == "done", result.message
    assert result.summary.device.startswith("cuda")


def test_workers_a_file_cannot_use_are_named_in_a_note(pool, tmp_path):
    """One file too short to split and --workers 2: it runs in one piece, and a note says that one of the two
    workers has nothing to do (it used to run on one worker without a word)."""
    src = write_clip(tmp_path / "short.mp4", moving_pattern(12, 64, 48), gop=100)
    notes: list[str] = []
    result, = enhance_all([config(src, tmp_path / "o.mkv")], ScaleOptions(workers=2), pool=pool, notes=notes.append)
    assert result.status == "done", result.message
    assert ("short.mp4: it is too short to split into more than 1 piece(s), so 1 of the 2 workers has nothing "
            "to do") in notes


def test_a_file_with_one_key_frame_splits_between_key_frames(pool, tmp_path):
    """A long GOP (one key frame) no longer keeps a file in one piece: its chunks start between key frames, each
    reader decoding from the key frame before its halo, and the output is the single run's."""
    src = write_clip(tmp_path / "one_key.mp4", cut_frames(), gop=1000)
    index = frame_index(src, 0)
    assert index is not None and index.keyframes == (0,)
    single, out = tmp_path / "single.mkv", tmp_path / "chunked.mkv"
    whole, = enhance_all([config(src, single)], ScaleOptions(chunks=1), pool=pool)
    assert whole.status == "done", whole.message
    notes: list[str] = []
    result, = enhance_all([config(src, out)], ScaleOptions(chunks=4), pool=pool, notes=notes.append)
    assert result.status == "done", result.message
    assert not [n for n in notes if "piece" in n or "chunks (" in n], notes  # it did run in 4 chunks
    assert_same_video(single, out)
