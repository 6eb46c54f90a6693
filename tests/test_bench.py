"""vidrestore bench: the JSON report's fields and what they must satisfy (the tiny flow-prior network, tiny
frames)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from vidrestore.errors import UsageError


def _bench(*args):
    from click.testing import CliRunner

    from vidrestore.cli import main

    return CliRunner().invoke(main, ["bench", *args])


def test_bench_json_fields_tiny():
    from vidrestore.model.prior_net import build_prior_model

    res = _bench("--size", "tiny", "--device", "cpu", "--resolution", "64x48", "--fps-x", "4", "--frames", "4",
                 "--warmup", "1", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    s = data["settings"]
    assert (s["resolution"], s["factor"], s["mode"], s["effective_factor"], s["dtype"]) == \
        ("64x48", 4, "joint", 4, "float32")

    hw = data["hardware"]
    for key in ("cpu", "cpu_threads", "torch_threads", "gpu", "torch", "cuda", "pyav", "device"):
        assert key in hw
    assert hw["device"] == "cpu" and hw["gpu"] is None and hw["cpu_threads"] >= 1

    m = data["model"]
    assert m["parameters"] == sum(p.numel() for p in build_prior_model("tiny").parameters())
    assert m["gmacs_per_output_frame"] > 0
    assert m["gmacs_per_output_frame"] == pytest.approx(
        (m["encode_gmacs_per_frame"] + m["restore_gmacs_per_window"]) / 4)
    assert m["padded_size"] == "64x48"
    assert "forward" not in m  # the engine is what is timed, not a copy of its steady state
    t = m["engine"]
    assert t["seconds"] > 0 and t["input_frames"] == 4
    assert t["output_fps"] == pytest.approx(4 * 4 / t["seconds"])
    assert t["ms_per_input_frame"] == pytest.approx(1e3 * t["seconds"] / 4)
    assert m["engine"]["output_frames"] == 16
    assert m["cuda_peak_allocated_mb"] is None and m["peak_rss_mb"] > 10

    p = data["pipeline"]
    assert (p["input_frames"], p["output_frames"]) == (4, 16)
    assert p["output_fps"] == pytest.approx(16 / p["seconds"])
    assert set(p["stages_s"]) == {"decode", "model", "encode"}
    assert all(v > 0 for v in p["stages_s"].values())
    if sys.platform.startswith("linux"):
        assert p["rss_mb_first_half"] > 10 and p["rss_mb_second_half"] > 10

    mi = data["minterpolate"]
    assert (mi["input_frames"], mi["output_frames"]) == (4, 16)  # the same frames as enhance writes
    assert mi["time_ratio_ours_over_minterpolate"] == pytest.approx(p["seconds"] / mi["seconds"])


def test_macs_count_real_work():
    """MACs grow with the pixel count and with the number of new frames per window."""
    import torch

    from vidrestore.evaluate.bench import count_macs
    from vidrestore.model.prior_net import build_prior_model

    model = build_prior_model("small").eval()
    cpu = torch.device("cpu")
    small = count_macs(model, 48, 64, 2, "joint", cpu)
    wide = count_macs(model, 48, 128, 2, "joint", cpu)
    assert wide["encode_gmacs_per_frame"] == pytest.approx(2 * small["encode_gmacs_per_frame"], rel=0.05)
    more = count_macs(model, 48, 64, 8, "joint", cpu)
    assert more["restore_gmacs_per_window"] > small["restore_gmacs_per_window"]
    assert more["encode_gmacs_per_frame"] == pytest.approx(small["encode_gmacs_per_frame"])  # once per frame
    assert more["gmacs_per_output_frame"] == pytest.approx(more["gmacs_per_input_frame"] / 8)  # spread over 8 frames
    deblur = count_macs(model, 48, 64, 8, "deblur", cpu)
    assert deblur["gmacs_per_output_frame"] == pytest.approx(deblur["gmacs_per_input_frame"])
    # an odd size is padded to the model's multiple first
    assert count_macs(model, 45, 60, 2, "joint", cpu)["padded_size"] == "64x48"


def test_moving_texture_and_clip(tmp_path):
    import av

    from vidrestore.synth.pan import moving_texture, write_clip

    frames = list(moving_texture(40, 32, 5, seed=1, speed=3.0))
    assert len(frames) == 5 and frames[0].shape == (32, 40, 3) and frames[0].dtype == np.uint8
    assert np.array_equal(frames[1][:-3, :-3], frames[0][3:, 3:])  # a pure diagonal pan of 3 px per frame
    path = write_clip(tmp_path / "c.mp4", 40, 32, 5)
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5


def test_bench_config_validation():
    from vidrestore.config import RunOptions
    from vidrestore.evaluate.bench import BenchConfig

    with pytest.raises(UsageError):
        BenchConfig(width=63, height=48)
    with pytest.raises(UsageError):
        BenchConfig(factor=17)
    with pytest.raises(UsageError):
        BenchConfig(run=RunOptions(weights="x"), size="tiny")
    with pytest.raises(UsageError, match="expected one of default, small, tiny"):
        BenchConfig(size="huge")
    with pytest.raises(UsageError):
        BenchConfig(size="prior-tiny")  # the sizes are the one network's, without a prefix
    assert BenchConfig(size="default").size == "default"
    res = _bench("--size", "huge", "--device", "cpu", "--resolution", "64x48", "--frames", "2", "--no-pipeline",
                 "--no-minterpolate")
    assert res.exit_code == 2 and "huge" in res.output and "Traceback" not in res.output


_RSS_PROBE = """
import time
import numpy as np
from vidrestore.evaluate.machine import RssSampler, current_rss_mb
assert current_rss_mb() > 10
with RssSampler(interval=0.01) as rss:
    time.sleep(0.3)
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
    time.sleep(0.3)
values = [r for _, r in rss.samples]
print(values[0], max(values))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_rss_sampler_sees_an_allocation():
    # in a fresh process: in this one, memory that earlier tests freed (or their leftover threads free while the
    # sampler runs) moves the RSS by hundreds of MB either way, which made this test fail on CI twice
    import subprocess

    out = subprocess.run([sys.executable, "-c", _RSS_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    start, peak = map(float, out.stdout.split())
    # a 200 MiB block, touched, is 200 MiB of new resident pages in a process that has freed nothing
    assert 180 < peak - start < 260


def test_rss_halves_split_the_samples_at_the_block_midpoint():
    # the split by time, on set samples (the real sampling is the test above: timing a real allocation against
    # the midpoint failed on a loaded CI machine, where touching 200 MiB took most of a second)
    from vidrestore.evaluate.machine import RssSampler

    rss = RssSampler()
    rss._t0, rss._t1 = 10.0, 12.0
    rss.samples = [(10.0, 100.0), (10.5, 120.0), (10.99, 110.0), (11.0, 300.0), (11.5, 250.0), (12.0, 200.0)]
    assert rss.halves() == (120.0, 300.0)
    rss.samples = [(10.0, 100.0)]
    assert rss.halves() is None  # no sample in the second half


def test_bench_with_tiles_times_every_tile():
    res = _bench("--size", "tiny", "--device", "cpu", "--resolution", "160x96", "--fps-x", "2", "--frames", "2",
                 "--warmup", "1", "--tile", "64", "--no-pipeline", "--no-minterpolate", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    eng = data["model"]["engine"]
    tiles = data["model"]["tiles_per_frame"]  # the MAC count's tiles: the engine's grid at its tile side
    assert tiles > 1 and eng["input_frames"] == 2 and eng["tile"] == 64
    # every tile of every frame went through the encoder inside the timed run, one tile per forward
    assert eng["encoded_items"] == 2 * tiles and eng["forward_calls"] > eng["encoded_items"]
