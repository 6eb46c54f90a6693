"""``lab/device_run.sh``, the lent GPU's whole training run (``recipes/prior-default-gpu.toml``), smoke-tested on
the CPU at tiny size: the next GPU session must not spend its device time finding out that a flag no longer exists."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED, needs_shared

pytestmark = pytest.mark.slow  # the full suite's lane: `pytest -m "not slow"` leaves it out

ROOT = Path(__file__).resolve().parents[1]


def _run(step: list[str], cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    """``lab/device_run.sh STEP`` on the CPU in fp32 at tiny size, with ``settings`` in its environment."""
    env = dict(os.environ, DEVICE="cpu", PRECISION="fp32", SIZE="tiny", BATCH="1", PYTHON=sys.executable, **settings)
    res = subprocess.run(["bash", str(ROOT / "lab" / "device_run.sh"), *step], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res


@needs_shared  # the recipe trains on the shared clips (their first 96 frames held out) and train/ footage
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_device_run_train_runs_a_tiny_cpu_run_and_returns_its_files(tmp_path):
    from conftest import write_clip

    data = tmp_path / "devdata"
    (data / "train").mkdir(parents=True)
    (data / "clips").symlink_to(SHARED / "clips")
    write_clip(data / "train" / "a.mp4", n=40, size=(96, 64), audio=False)
    res = _run(["train", "1"], tmp_path, DEVDATA=str(data), RUN=str(tmp_path / "run"), OUT=str(tmp_path / "out"),
               STEPS="2", STORE="64", CACHE_MIN="64", VAL_EVERY="2", THREADS="1")
    assert "finished: step 2" in res.stdout
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"train.txt", "log.jsonl", "final.safetensors"}
    # the run is recipes/prior-default-gpu.toml with the environment's overrides
    from vidrestore.weights import model_from_file

    model = model_from_file(tmp_path / "out" / "final.safetensors")
    assert type(model).__name__ == "PriorNet" and model.config.name == "tiny"
    assert "footage: " in res.stdout and "4 shots" in res.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_device_run_bench_writes_its_three_reports(tmp_path):
    import json

    _run(["bench"], tmp_path, OUT=str(tmp_path / "out"), HD="64x48", UHD="96x64", FRAMES="3", UHD_FRAMES="2")
    for name, size, factor in (("bench_720p_8x.json", "64x48", 8), ("bench_720p_2x.json", "64x48", 2),
                               ("bench_4k_8x.json", "96x64", 8)):
        settings = json.loads((tmp_path / "out" / name).read_text())["settings"]
        assert (settings["resolution"], settings["factor"], settings["size"]) == (size, factor, "tiny"), name
