"""``--ensemble``: the model averaged over mirrored copies of each window, its prior flows mirrored with it
(vidrestore.model.ensemble)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import make_engine, moving_pattern, nonzero_tiny_model, real_frames
from vidrestore import runtime
from vidrestore.cli import main
from vidrestore.config import RunOptions
from vidrestore.errors import UsageError
from vidrestore.model.ensemble import FlipEnsemble, _flip_flow
from vidrestore.model.prior_net import PriorFlows


@pytest.fixture(scope="module")
def model():
    # corrections, residuals and the refiner random too, so that mirroring changes the outputs
    return nonzero_tiny_model(5)


def window(seed: int = 0) -> tuple[torch.Tensor, PriorFlows]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 4, 3, 32, 48, generator=g)
    return x, PriorFlows(*(torch.randn(1, 2, 32, 48, generator=g) * 2 for _ in range(3)))


def mirrored(model, x, prior, times, dims):
    key, inter = model(x.flip(dims), times, PriorFlows(*(_flip_flow(f, dims) for f in prior)))
    return key.flip(dims), inter.flip(dims)


def test_mirrored_flows_are_mirrored_and_their_component_negated():
    flow = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)
    lr = _flip_flow(flow, (-1,))
    assert torch.equal(lr[:, 0], -flow[:, 0].flip(-1)) and torch.equal(lr[:, 1], flow[:, 1].flip(-1))
    both = _flip_flow(flow, (-2, -1))
    assert torch.equal(both, -flow.flip((-2, -1)))
    assert _flip_flow(flow, ()) is flow


def test_passes_are_the_mean_of_the_mirrored_runs(model):
    (x, prior), times = window(), torch.tensor([0.25, 0.5])
    with torch.no_grad():
        plain = model(x, times, prior)
        runs = [mirrored(model, x, prior, times, dims) if dims else plain for dims in ((), (-1,), (-2,), (-2, -1))]
        one = FlipEnsemble(model, 1)(x, times, prior)
        two = FlipEnsemble(model, 2)(x, times, prior)
        four = FlipEnsemble(model, 4)(x, times, prior)
    for got, want in zip(one, plain):
        torch.testing.assert_close(got, want)
    for i in (0, 1):
        torch.testing.assert_close(two[i], (runs[0][i] + runs[1][i]) / 2, atol=1e-6, rtol=0)
        torch.testing.assert_close(four[i], sum(r[i] for r in runs) / 4, atol=1e-6, rtol=0)
    # the network is not mirror-equivariant, so the passes differ and the mean is a new result
    assert (runs[1][1] - runs[0][1]).abs().max() > 1e-3
    assert (four[1] - plain[1]).abs().max() > 1e-4


def test_features_hold_every_mirrored_copy_and_restore_splits_them(model):
    x, _ = window(1)
    ens = FlipEnsemble(model, 4)
    with torch.no_grad():
        feats = ens.encode(x[:, 0])
        single = model.encode(x[:, 0])
        flipped = model.encode(x[:, 0].flip(-2))
    assert len(feats) == 4 * len(single)
    for got, want in zip(feats[2 * len(single):3 * len(single)], flipped):
        torch.testing.assert_close(got, want)
    assert ens.config is model.config


def test_unknown_pass_count_is_refused(model):
    with pytest.raises(ValueError):
        FlipEnsemble(model, 3)
    with pytest.raises(UsageError):
        RunOptions(ensemble=3)


def test_the_runtime_wraps_the_ensemble_once(model):
    rt = runtime.load(RunOptions(ensemble=4, device="cpu"), model=model)
    assert isinstance(rt.model, FlipEnsemble) and len(rt.model.flips) == 4 and rt.network is model
    assert runtime.load(RunOptions(device="cpu"), model=model).model is model


@pytest.mark.parametrize("mode", ["joint", "interp"])
def test_engine_with_an_ensemble_matches_the_wrapped_model_and_changes_new_frames(model, mode):
    frames = real_frames("01_dog.mp4", 4, 56, 40)
    kw = dict(factor=2, mode=mode, scene_threshold=None)
    plain = list(make_engine(model, **kw).process(iter(frames)))
    ens = list(make_engine(model, ensemble=2, **kw).process(iter(frames)))
    direct = list(make_engine(FlipEnsemble(model, 2), **kw).process(iter(frames)))
    assert len(ens) == len(plain) == 8
    assert all(np.array_equal(a, b) for a, b in zip(ens, direct))
    assert any(not np.array_equal(a, b) for a, b in zip(ens[1::2], plain[1::2]))
    if mode == "interp":
        assert all(ens[2 * j] is frames[j] for j in range(4))  # input frames still pass through untouched


def test_enhance_cli_takes_ensemble_and_refuses_other_counts(make_clip, tmp_path, tiny_weights):
    src = make_clip(n=4, size=(48, 32))
    out = tmp_path / "out.mp4"
    base = ["enhance", str(src), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu", "-q"]
    res = CliRunner().invoke(main, [*base, "--ensemble", "2"])
    assert res.exit_code == 0, res.output
    assert out.exists()
    bad = tmp_path / "bad.mp4"
    res = CliRunner().invoke(main, [*base[:3], str(bad), *base[4:], "--ensemble", "3"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == ["vidrestore: error: --ensemble 3: choose 1, 2, 4"]
    assert not bad.exists()


def test_moving_pattern_frames_round_trip_through_a_four_pass_engine(model):
    frames = moving_pattern(3, 40, 24)
    out = list(make_engine(model, ensemble=4, factor=3, scene_threshold=None).process(iter(frames)))
    assert len(out) == 9 and all(o.shape == (24, 40, 3) and o.dtype == np.uint8 for o in out)


@pytest.mark.parametrize("command", [["eval", "--synthetic"], ["bench", "--size", "tiny"]])
def test_eval_and_bench_refuse_other_counts(command):
    res = CliRunner().invoke(main, [*command, "--ensemble", "3"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == ["vidrestore: error: --ensemble 3: choose 1, 2, 4"]
