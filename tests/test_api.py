"""The Python API: ``vidrestore.load_model``, ``vidrestore.enhance`` and ``vidrestore.enhance_frames``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import vidrestore
from conftest import moving_pattern
from vidrestore.errors import OutputError, UsageError
from vidrestore.io.probe import probe


def test_import_is_light_and_the_api_loads_on_first_use():
    code = ("import sys, vidrestore; heavy = [m for m in ('torch', 'av', 'cv2') if m in sys.modules]; "
            "assert not heavy, heavy; vidrestore.load_model; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        vidrestore.no_such_thing  # noqa: B018 (the attribute access is the test)


def test_load_model_gives_the_default_flow_prior_network_in_eval_mode():
    from vidrestore.model import PriorNet

    model = vidrestore.load_model(device="cpu")
    assert isinstance(model, PriorNet) and not model.training
    assert model.config.name == vidrestore.weights.load_model(vidrestore.weights.DEFAULT_WEIGHTS).config.name
    assert all(p.dtype.is_floating_point and p.dtype == model.encoder.s1[0].weight.dtype for p in model.parameters())
    with pytest.raises(TypeError):
        vidrestore.load_model(device="cpu", options={"flow_polish": 0})  # the network has no inference options


def test_enhance_a_file(tiny_model, make_clip, tmp_path):
    src = make_clip(n=5, size=(48, 32))
    dst = tmp_path / "out.mp4"
    summary = vidrestore.enhance(src, dst, fps_x=3, model=tiny_model, device="cpu")
    assert summary.frames_in == 5 and summary.frames_out == 15
    info = probe(dst)
    assert info.frame_count == 15 and info.rate == probe(src).rate * 3
    with pytest.raises(OutputError, match="output exists") as err:
        vidrestore.enhance(src, dst, fps_x=2, model=tiny_model)  # exists: no overwrite without asking
    assert "pass overwrite=True" in str(err.value) and "--overwrite" not in str(err.value)  # its own words


def test_enhance_frames_streams_k_frames_per_input(tiny_model):
    frames = moving_pattern(4, 40, 24)
    out = list(vidrestore.enhance_frames(iter(frames), fps_x=2, mode="interp", model=tiny_model, device="cpu"))
    assert len(out) == 8 and all(o.shape == (24, 40, 3) and o.dtype == np.uint8 for o in out)
    assert all(out[2 * j] is frames[j] for j in range(4))  # interp keeps the input frames
    with pytest.raises(UsageError):
        list(vidrestore.enhance_frames(frames, fps_x=99, model=tiny_model))


def test_deblur_mode_with_more_frames_asked_is_refused_as_on_the_command_line(tiny_model):
    """``enhance(mode="deblur", fps_x=8)`` ignored fps_x; the CLI refuses the contradiction, and so does the API."""
    import numpy as np

    import vidrestore
    from vidrestore.errors import UsageError

    frames = [np.zeros((32, 32, 3), np.uint8)] * 2
    with pytest.raises(UsageError, match="fps_x=8 contradicts"):
        list(vidrestore.enhance_frames(frames, fps_x=8, mode="deblur", model=tiny_model))
    with pytest.raises(UsageError, match="fps_x=8 contradicts"):
        vidrestore.enhance("in.mp4", "out.mp4", fps_x=8, mode="deblur", model=tiny_model)
    assert len(list(vidrestore.enhance_frames(frames, mode="deblur", model=tiny_model))) == 2
    assert len(list(vidrestore.enhance_frames(frames, fps_x=1, mode="deblur", model=tiny_model))) == 2
    assert len(list(vidrestore.enhance_frames(frames, model=tiny_model))) == 4  # the default: 2x


def test_the_api_sets_the_wait_policy_before_torch_loads():
    """OpenMP reads its wait policy once, when torch loads it: the API sets PASSIVE (idle threads sleep, as under
    the command) before its first import of torch, and leaves a policy the user set alone."""
    code = ("import os, sys\n"
            "seen = {}\n"
            "class Spy:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' and 'torch' not in seen:\n"
            "            seen['torch'] = os.environ.get('OMP_WAIT_POLICY')\n"
            "        return None\n"
            "sys.meta_path.insert(0, Spy())\n"
            "import vidrestore\n"
            "vidrestore.enhance\n"
            "print(seen.get('torch'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.strip() == "ACTIVE"


def test_the_api_runs_with_the_commands_thread_settings(make_clip, tiny_weights, tmp_path):
    """The Python API goes through the run path that sets the threads, as the command does (it used to leave
    torch's and OpenCV's pools as they were: busy-waiting threads that fought the decoder and encoder made
    the same job several times slower). Checked in a fresh process: the settings, not the time."""
    src = make_clip("in.mp4", n=4, audio=False)
    code = ("import cv2, torch, vidrestore; from vidrestore import threads; "
            f"vidrestore.enhance({str(src)!r}, {str(tmp_path / 'a.mp4')!r}, fps_x=2, mode='interp', device='cpu', "
            f"weights={str(tiny_weights)!r}); first = (torch.get_num_threads(), cv2.getNumThreads()); "
            f"vidrestore.enhance({str(src)!r}, {str(tmp_path / 'j.mp4')!r}, fps_x=2, mode='joint', device='cpu', "
            f"weights={str(tiny_weights)!r}); joint = (torch.get_num_threads(), cv2.getNumThreads()); "
            f"vidrestore.enhance({str(src)!r}, {str(tmp_path / 'b.mp4')!r}, fps_x=2, mode='interp', device='cpu', "
            f"weights={str(tiny_weights)!r}, threads=1); "
            "print(repr((first, joint)).replace(' ', ''), threads.resolve(None), torch.get_num_threads(), "
            "cv2.getNumThreads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    both, cores, torch_after, cv2_after = out.stdout.strip().split()[-4:]
    n = int(cores)
    # the cores available, as --threads' default: torch leaves one to the prior and the codecs in interp mode
    assert both == repr(((max(1, n - 1), n), (n, n))).replace(" ", "")
    assert (torch_after, cv2_after) == ("1", "1")  # threads=1, as --threads 1


def test_network_threads_by_mode_and_device():
    from vidrestore import threads

    assert threads.network_share(2, "interp", "cpu") == 1
    assert threads.network_share(8, "interp", "cpu") == 7
    assert threads.network_share(1, "interp", "cpu") == 1
    assert [threads.network_share(2, m, "cpu") for m in ("joint", "deblur")] == [2, 2]
    assert threads.network_share(2, "interp", "cuda") == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_helper_threads_run_at_a_lower_priority_than_the_caller():
    import threading

    from vidrestore import threads
    from vidrestore.io.worker import END, Worker

    seen = []

    def body():
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    w = Worker(body, "probe")
    w.start()
    assert w.get() is END
    assert seen == [min(19, main + threads.BACKGROUND_NICE)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # the caller's own is untouched
