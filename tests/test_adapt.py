"""``--adapt``: the network fine-tuned on the input's own frames, used only where it beats the base network on
held-out frames of the video; the CLI, the API, refusal, --save-adapted and Ctrl-C."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import vidrestore
from conftest import moving_pattern, nonzero_tiny_model, write_clip
from vidrestore.cli import main
from vidrestore.train.adapt import AdaptConfig, adapt, auto_budget, min_frames
from vidrestore.weights import read_metadata, save_weights, sha256_file

SMALL = AdaptConfig(crop=64, val_crop=64, windows=16, val_windows=8, batch=2, lr=3e-4)
ENV = {**os.environ, "VIDRESTORE_PROGRESS_INTERVAL": "0.2", "HF_HUB_OFFLINE": "1"}


def broken_model():
    """The tiny network with its restoration path scrambled: its frames are far off, so a few steps on the
    video's own frames must bring them closer (adaptation has something to gain)."""
    model = nonzero_tiny_model()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.restorer.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def same_tensors(a: torch.nn.Module, b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.state_dict().items())


@pytest.fixture(scope="module")
def broken_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("adapt") / "broken.safetensors"
    save_weights(broken_model(), path)
    return path


def test_auto_budget_grows_with_the_video_and_is_capped():
    assert auto_budget(1) == 30 and auto_budget(10) == 60 and auto_budget(600) == 120


def test_a_better_network_is_used_and_the_base_is_left_as_it_was():
    frames = moving_pattern(40, 96, 64)
    base = broken_model()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    seen = []
    result = adapt(base, frames, "deblur", 8.0, torch.device("cpu"), SMALL, progress=seen.append)
    assert result.used, result.reason
    assert result.model is not base and same_tensors(base, before)
    assert result.adapted["real.key"] > result.base["real.key"] + SMALL.min_gain_db
    assert "adapted to this video" in result.reason and result.steps > 0
    assert [p.phase for p in seen][:2] == ["data", "train"] and seen[-1].phase == "done"
    assert seen[-1].seconds <= 8.0 * 1.5  # the budget holds, the last scoring included


def test_no_better_network_is_refused():
    """Steps that change nothing (a learning rate of 0) cannot beat the base: it is kept, with a note."""
    frames = moving_pattern(40, 96, 64)
    base = nonzero_tiny_model()
    result = adapt(base, frames, "interp", 3.0, torch.device("cpu"), dataclasses.replace(SMALL, lr=0.0))
    assert not result.used and result.model is base and result.steps > 0
    assert result.adapted == result.base
    assert "did not improve" in result.reason and "base network is used" in result.reason


def test_too_short_a_video_is_not_adapted():
    base = nonzero_tiny_model()
    frames = moving_pattern(min_frames("joint") - 1, 96, 64)
    result = adapt(base, frames, "joint", 5.0, torch.device("cpu"), SMALL)
    assert not result.used and result.model is base and "too short" in result.reason


def test_cli_adapt_and_save_adapted(broken_weights, tmp_path):
    clip = write_clip(tmp_path / "in.mp4", moving_pattern(40, 96, 64), audio=False)
    out, saved = tmp_path / "out.mp4", tmp_path / "adapted.safetensors"
    args = ["enhance", str(clip), "-o", str(out), "--weights", str(broken_weights), "--device", "cpu",
            "--mode", "deblur", "--threads", "2", "--adapt", "12", "--save-adapted", str(saved)]
    res = CliRunner(env={"VIDRESTORE_PROGRESS_INTERVAL": "0.5"}).invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "adapting" in res.stderr and "adapted to this video" in res.stderr, res.stderr
    assert out.is_file() and saved.is_file()
    meta = read_metadata(saved)
    assert meta["adapt.source"] == "in.mp4" and meta["adapt.source_sha256"] == sha256_file(clip)
    assert meta["adapt.mode"] == "deblur" and meta["adapt.base_weights"] == str(broken_weights)
    assert int(meta["adapt.steps"]) > 0 and json.loads(meta["adapt.heldout_adapted"])
    # the saved network is the one that made the output: it loads, and differs from the base
    assert not same_tensors(vidrestore.weights.load_model(str(saved)), broken_model().state_dict())
    again = CliRunner().invoke(main, args)  # nothing is overwritten without --overwrite
    assert again.exit_code == 4 and "exists" in again.stderr


@pytest.mark.parametrize("extra, code, message", [
    (["--save-adapted", "a.safetensors"], 2, "--save-adapted needs --adapt"),
    (["--adapt", "10", "--save-adapted", "a.pt"], 2, "must end in .safetensors"),
    (["--adapt", "soon"], 2, "expected a number of seconds or auto"),
    (["--adapt", "0"], 2, "seconds above 0"),
])
def test_cli_adapt_usage_errors(tiny_weights, tmp_path, extra, code, message):
    clip = write_clip(tmp_path / "in.mp4", n=4, audio=False)
    res = CliRunner().invoke(main, ["enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--weights",
                                    str(tiny_weights), "--device", "cpu", *extra])
    assert res.exit_code == code, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_cli_without_an_adapted_network_writes_no_weights(tiny_weights, tmp_path):
    """A video too short to adapt on (12 frames): enhanced by the base network, with a note, and no weights."""
    clip = write_clip(tmp_path / "in.mp4", moving_pattern(12, 96, 64), audio=False)
    res = CliRunner().invoke(main, ["enhance", str(clip), "-o", str(tmp_path / "o.mp4"), "--weights",
                                    str(tiny_weights), "--device", "cpu", "--mode", "interp", "--adapt", "5",
                                    "--save-adapted", str(tmp_path / "a.safetensors")])
    assert res.exit_code == 0, res.output
    assert "too short to adapt on" in res.stderr and "not written" in res.stderr
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "o.mp4"]


def test_api_adapt_leaves_the_callers_model_alone(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", moving_pattern(40, 96, 64), audio=False)
    model = broken_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    notes: list[str] = []
    summary = vidrestore.enhance(clip, tmp_path / "o.mp4", mode="deblur", model=model, device="cpu", adapt=12,
                                 notes=notes.append, threads=2)
    assert summary.frames_out == 40
    assert any("adapted to this video" in n for n in notes), notes
    assert same_tensors(model, before)


def test_eval_adapted_method(tiny_weights):
    res = CliRunner().invoke(main, ["eval", "--synthetic", "--count", "2", "--weights", str(tiny_weights),
                                    "--device", "cpu", "--methods", "model", "--adapt", "2", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert list(data["methods"]) == ["model", "adapted"]
    adaptations = data["settings"]["adaptations"]
    assert len(adaptations) == 2 and not any(a["used"] for a in adaptations)  # 8-frame clips: too short
    assert data["methods"]["adapted"]["mean"] == data["methods"]["model"]["mean"]


@pytest.mark.slow
def test_ctrl_c_while_adapting_leaves_nothing(tiny_weights, tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    clip = write_clip(tmp_path / "in.mp4", moving_pattern(60, 160, 96), audio=False)
    proc = subprocess.Popen([sys.executable, "-m", "vidrestore", "enhance", str(clip), "-o", str(folder / "o.mp4"),
                             "--weights", str(tiny_weights), "--device", "cpu", "--adapt", "60", "--save-adapted",
                             str(folder / "a.safetensors")], stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "held-out" in line:
            break
    assert "held-out" in seen, seen
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert (seen + err).strip().splitlines()[-1] == "vidrestore: error: interrupted; no output was written"
    assert os.listdir(folder) == []
