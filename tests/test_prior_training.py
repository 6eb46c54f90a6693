"""Training data and the training loop of the flow-prior network: realistic blur on real frames, shots,
batches with their prior, a recipe run that resumes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import reds_rgb
from vidrestore.synth.blur import apply_kernels, shake_kernels, temporal_blur
from vidrestore.train.prior_data import BlurConfig, RealSampler, split_shots
from vidrestore.train.prior_loop import load_prior_recipe, train_prior


def test_shake_kernels_have_their_length_and_keep_brightness():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([0.0, 6.0, 16.0, 32.0])
    k = shake_kernels(lengths, 41, g)
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(4))
    assert k[0, 20, 20] == 1  # no length: no blur
    for kernel, length in zip(k[1:], lengths[1:]):
        ys, xs = (kernel > 1e-4).nonzero(as_tuple=True)
        extent = math.hypot(float(xs.max() - xs.min()), float(ys.max() - ys.min()))
        assert 0.3 * float(length) <= extent <= float(length) + 2
    img = torch.from_numpy(reds_rgb(0)).permute(2, 0, 1).float().unsqueeze(0).repeat(4, 1, 1, 1) / 255
    out = apply_kernels(img, k)
    assert torch.equal(out[0], img[0])
    assert torch.allclose(out.mean(dim=(1, 2, 3)), img.mean(dim=(1, 2, 3)), atol=0.01)  # borders replicate
    sharpness = [float((o[:, :, 1:] - o[:, :, :-1]).abs().mean()) for o in out]
    assert sharpness[0] > sharpness[1] > sharpness[2] > sharpness[3]  # longer blur, softer frame


def test_temporal_blur_averages_the_scenes_own_motion():
    """A pattern moving 2 px per frame, blurred over 2 frame intervals, is its average over 4 px of
    motion; exposure 0 is the frame itself."""
    rng = np.random.default_rng(0)
    base = (rng.random((64, 160)) * 255).astype(np.float32)
    base = np.clip(np.repeat(np.repeat(base[::4, ::4], 4, 0), 4, 1), 0, 255)  # blocks DIS can follow
    frames = [np.repeat(np.roll(base, 2 * i, axis=1)[..., None], 3, axis=2).astype(np.uint8) for i in range(5)]
    assert np.array_equal(temporal_blur(frames, 2, 0.0), frames[2].astype(np.float32))
    out = temporal_blur(frames, 2, 2.0, steps=2)  # sub-frames every half interval: whole-pixel shifts
    shifts = [np.roll(base, 4 + s, axis=1) for s in range(-2, 3)]
    expect = np.mean(shifts, axis=0)
    inner = (slice(8, -8), slice(16, -16))
    assert np.abs(out[..., 0][inner] - expect[inner]).mean() < 1.5
    assert np.abs(out[..., 0][inner] - frames[2][..., 0][inner]).mean() > 10.0  # it did blur


def test_split_shots_cuts_at_hard_cuts_only():
    a = torch.from_numpy(np.stack([reds_rgb(i) for i in range(5)]))
    b = 255 - a
    shots = split_shots(torch.cat((a, b)))
    assert [s.shape[0] for s in shots] == [5, 5]
    assert len(split_shots(a)) == 1


def test_real_windows_have_targets_between_inputs_and_the_inputs_prior():
    video = torch.from_numpy(np.stack([reds_rgb(i) for i in range(10)] * 2))  # 20 frames
    sampler = RealSampler([video], threads=1)
    g = torch.Generator().manual_seed(0)
    for sharp in (True, False):
        w = sampler.sample(2, 64, g, sharp=sharp)
        n_t = int((w.times[0] >= 0).sum())
        assert w.inputs.shape == (2, 4, 64, 64, 3) and w.inputs.dtype == np.uint8
        assert w.key.shape == (2, 2, 64, 64, 3) and w.inter.shape[:2] == (2, 3)
        assert 1 <= n_t <= 3 and np.allclose(w.times[0, :n_t], np.arange(1, n_t + 1) / (n_t + 1))
        assert (w.times[:, n_t:] == -1).all()
        assert w.flows.shape == (2, 4, 64, 64, 2) and w.flows.dtype == np.float16
        from vidrestore.flow import dis_flow

        assert np.abs(w.flows[0, 1].astype(np.float32) - dis_flow(w.inputs[0, 2], w.inputs[0, 1])).max() < 0.05
        assert np.abs(w.flows[0, 3].astype(np.float32) - dis_flow(w.inputs[0, 2], w.inputs[0, 3])).max() < 0.05
        if sharp:
            assert np.array_equal(w.inputs[:, 1], w.key[:, 0]) and np.array_equal(w.inputs[:, 2], w.key[:, 1])
        assert w.reversible.all() and (w.kind == (1 if sharp else 0)).all()


def _softness(u8: np.ndarray) -> float:
    """Mean absolute horizontal gradient of uint8 images (lower: softer)."""
    return float(np.abs(np.diff(u8.astype(np.float32), axis=-2)).mean())


def test_a_shared_shake_blurs_every_view_alike_and_lucky_frames_only_independent_ones():
    still = torch.from_numpy(np.stack([reds_rgb(0)] * 24))  # a still scene: only the camera's shake blurs
    plain = dict(sharp_prob=0.0, temporal_prob=0.0, shake_prob=1.0, shake_length=(12.0, 12.0), noise=0.0)
    g = torch.Generator().manual_seed(0)
    shared = RealSampler([still], BlurConfig(**plain, shared_shake_prob=1.0, lucky_prob=1.0), threads=1)
    w = shared.sample(3, 64, g)
    for views, key in zip(w.inputs, w.key):
        assert all(np.array_equal(views[0], v) for v in views[1:])  # one kernel, no lucky frame
        assert _softness(views[1]) < 0.8 * _softness(key[0])
    own = RealSampler([still], BlurConfig(**plain, shared_shake_prob=0.0, lucky_prob=0.0), threads=1)
    w = own.sample(3, 64, g)
    assert not any(np.array_equal(v[0], v[1]) for v in w.inputs)  # a kernel per frame


def test_length_blur_smears_the_scenes_motion_to_the_drawn_length():
    rng = np.random.default_rng(0)
    base = (rng.random((32, 48)) * 255).astype(np.float32)
    base = np.clip(np.repeat(np.repeat(base, 4, 0), 4, 1), 0, 255)  # 128x192 blocks DIS can follow
    video = torch.from_numpy(np.stack([np.repeat(np.roll(base, 2 * i, axis=1)[..., None], 3, axis=2)
                                       for i in range(40)]).astype(np.uint8))  # 2 px per frame
    soft = {}
    for length in (4.0, 14.0):
        cfg = BlurConfig(strides=(8,), sharp_prob=0.0, temporal_prob=1.0, shake_prob=0.0, noise=0.0,
                         length_prob=1.0, length=(length, length), max_exposure=16.0)
        w = RealSampler([video], cfg, threads=1).sample(2, 96, torch.Generator().manual_seed(1))
        soft[length] = _softness(w.inputs[:, 1])
        sharp = _softness(w.key[:, 0])
    assert soft[14.0] < 0.8 * soft[4.0] < 0.8 * sharp


def test_length_blur_exposure_is_at_most_the_frame_interval_and_short_shots_serve_small_strides():
    rng = np.random.default_rng(0)
    base = (rng.random((32, 48)) * 255).astype(np.float32)
    base = np.clip(np.repeat(np.repeat(base, 4, 0), 4, 1), 0, 255)
    video = torch.from_numpy(np.stack([np.repeat(np.roll(base, 2 * i, axis=1)[..., None], 3, axis=2)
                                       for i in range(20)]).astype(np.uint8))  # 2 px per frame, 20 frames
    cfg = BlurConfig(strides=(2, 16), sharp_prob=0.0, temporal_prob=1.0, shake_prob=0.0, noise=0.0,
                     length_prob=1.0, length=(14.0, 14.0), max_exposure=16.0)
    sampler = RealSampler([video], cfg, threads=1)
    assert sampler.strides == [2]  # 20 frames: too short for stride 16's span, long enough for stride 2's
    w = sampler.sample(2, 96, torch.Generator().manual_seed(1))
    capped = _softness(w.inputs[:, 1])  # 14 px wanted, 2 frames of exposure reach 4 px
    four = BlurConfig(**{**cfg.__dict__, "strides": (2,), "length": (4.0, 4.0)})
    w4 = RealSampler([video], four, threads=1).sample(2, 96, torch.Generator().manual_seed(1))
    assert capped == pytest.approx(_softness(w4.inputs[:, 1]), rel=0.05)


@pytest.fixture
def recipe(tmp_path):
    from conftest import write_clip

    clip = write_clip(tmp_path / "clip.mp4", n=40, size=(96, 64), audio=False)
    path = tmp_path / "r.toml"
    path.write_text(f"""arch = "prior"
size = "tiny"
steps = 4
warmup = 2
footage = ["{clip}"]
holdout = ["{clip}"]
holdout_frames = 20
val_every = 2
log_every = 1
threads = 1
store = 48
shard = 8
cache_min = 8
cache_windows = 16
[mix]
real = 1
interp = 1
synthetic = 1
[[stages]]
name = "restore"
until = 2
mix = {{ real = 1 }}
batch = 1
crop = 32
[[stages]]
name = "joint"
mix = {{ real = 1, interp = 1, synthetic = 1 }}
batch = 1
crop = 48
""")
    return path


@pytest.mark.slow
def test_a_recipe_trains_resumes_and_exports(recipe, tmp_path):
    cfg = load_prior_recipe(recipe, {"out": str(tmp_path / "run"), "steps": 4})
    assert cfg.size == "tiny" and cfg.holdout_frames == 20 and dict(cfg.mix) == {"real": 1, "interp": 1, "synthetic": 1}
    first = train_prior(load_prior_recipe(recipe, {"out": str(tmp_path / "run"), "steps": 4, "minutes": 0.0}),
                        echo=lambda line: None)
    assert first["step"] == 0 and not first["finished"]
    done = train_prior(cfg, echo=lambda line: None)
    assert done["step"] == 4 and done["finished"]
    again = train_prior(cfg, echo=lambda line: None)  # resumed at its last step: nothing left to do
    assert again["step"] == 4
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [0, 2, 4]  # 0: where the run starts
    floor = next(r["val"] for r in records if r["kind"] == "floor")
    # the real key frames are scored twice: in their windows, and alone (deconvolution, nothing to borrow)
    assert {"real.key", "real.single.key", "interp.inter", "synthetic.key"} <= set(floor)
    assert "real.single.inter" not in floor
    assert {r["stage"] for r in records if r["kind"] == "train"} == {"restore", "joint"}
    assert any(r["kind"] == "resume" for r in records)
    from vidrestore.weights import model_from_file

    model = model_from_file(done["export"])
    assert model.config.name == "tiny"
    # a run warm-started from that export (4 steps) is at step 4 of the curriculum: past the restore stage
    # (until step 2), its steps are all joint
    more = load_prior_recipe(recipe, {"out": str(tmp_path / "more"), "steps": 2, "init": done["export"],
                                      "cache": str(tmp_path / "run" / "cache")})
    train_prior(more, echo=lambda line: None)
    records = [json.loads(line) for line in (tmp_path / "more" / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records if r["kind"] == "train"} == {"joint"}


def test_blur_to_length_picks_the_exposure_from_the_motion():
    """2 px of motion per frame and 8 px asked: an exposure of 4 intervals, the average over 8 px."""
    from vidrestore.synth.blur import blur_to_length

    rng = np.random.default_rng(1)
    base = np.clip(np.repeat(np.repeat((rng.random((16, 48)) * 255), 4, 0), 4, 1), 0, 255).astype(np.float32)
    frames = [np.repeat(np.roll(base, 2 * i, axis=1)[..., None], 3, axis=2).astype(np.uint8) for i in range(9)]
    out, reached = blur_to_length(frames, 4, 8.0)
    assert out.dtype == np.uint8 and abs(reached - 8.0) < 1.0
    expect = np.mean([np.roll(base, 8 + s, axis=1) for s in range(-4, 5)], axis=0)  # whole-pixel shifts
    inner = (slice(8, -8), slice(16, -16))
    got = out[..., 0][inner].astype(np.float32)
    assert np.abs(got - expect[inner]).mean() < 5.0
    assert np.abs(got - frames[4][..., 0][inner]).mean() > 20.0
    _, capped = blur_to_length(frames, 1, 8.0)  # one frame each side: at most 2 intervals, 4 px
    assert capped < 4.5


def test_eval_blur_length_only_with_the_deblur_protocol():
    from vidrestore.errors import UsageError
    from vidrestore.evaluate.runner import EvalConfig

    EvalConfig(protocol="deblur", stride=16, exposure=15, blur_length=16)
    with pytest.raises(UsageError, match="blur-length"):
        EvalConfig(protocol="joint", stride=8, exposure=7, blur_length=16)
    with pytest.raises(UsageError, match="blur-length"):
        EvalConfig(protocol="deblur", stride=16, exposure=15, blur_length=0)


def test_restoration_path_has_its_own_learning_rate_scale():
    from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorNet
    from vidrestore.train.prior_loop import PriorTrainConfig, _param_groups

    model = PriorNet(PRIOR_CONFIGS["tiny"])
    groups = _param_groups(model, PriorTrainConfig(name="t", out="x", restore_lr_scale=3.0))
    assert [g["scale"] for g in groups] == [1.0, 3.0]
    restore = {id(p) for p in model.restorer.parameters()}
    assert {id(p) for p in groups[1]["params"]} == restore
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def _train_cli(args: list[str]):
    from click.testing import CliRunner

    from vidrestore.cli import main

    return CliRunner().invoke(main, ["train", *args])


@pytest.mark.slow
def test_train_cli_runs_a_recipe_with_its_command_line_settings(recipe, tmp_path):
    out = tmp_path / "cli-run"
    res = _train_cli(["--recipe", str(recipe), "--out", str(out), "--set", "steps=2", "--set", "val_every=2",
                      "--threads", "1", "--device", "cpu", "--precision", "fp32", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "size tiny, 2 steps (restore 1 x 32px to 2, joint 1 x 48px) on cpu (fp32)" in res.output
    assert str(out) in res.output
    assert not out.exists()  # a dry run trains nothing
    res = _train_cli(["--recipe", str(recipe), "--out", str(out), "--set", "steps=2", "--set", "val_every=2",
                      "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "finished: step 2" in res.output and (out / "final.safetensors").is_file()
    from vidrestore.weights import model_from_file

    assert model_from_file(out / "final.safetensors").config.name == "tiny"


def test_train_cli_takes_only_flow_prior_recipes_and_its_own_options(recipe, tmp_path):
    res = _train_cli(["--help"])
    assert res.exit_code == 0 and "--recipe" in res.output and "--minutes" in res.output
    for gone in ("--steps", "--size", "--pixel-loss", "--stage", "--train-only"):
        assert gone not in res.output, gone
    old = tmp_path / "old.toml"
    old.write_text('[[stages]]\nname = "v1"\nsize = "small"\n')
    res = _train_cli(["--recipe", str(old), "--dry-run"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'not a flow-prior network recipe (it needs arch = "prior"' in lines[0], res.output
    res = _train_cli(["--recipe", str(recipe), "--steps", "2"])  # the old per-flag options are gone
    assert res.exit_code == 2 and "--steps" in res.output
    res = _train_cli(["--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--recipe" in res.output
    res = _train_cli(["--recipe", str(recipe), "--set", "nonsense", "--dry-run"])
    assert res.exit_code == 2 and "NAME=VALUE" in res.output
    res = _train_cli(["--recipe", str(recipe), "--set", "stepz=2", "--dry-run"])
    assert res.exit_code == 2 and "stepz" in res.output
    res = _train_cli(["--recipe", str(recipe), "--threads", "0"])
    assert res.exit_code == 2 and "--threads" in res.output


@pytest.mark.parametrize("name", ["prior-small.toml", "prior-default-gpu.toml"])
def test_the_shipped_recipes_are_flow_prior_recipes(name, tmp_path):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "recipes" / name
    cfg = load_prior_recipe(path, {"out": str(tmp_path / "o")}, data=tmp_path)
    assert cfg.steps > 0 and cfg.size in ("small", "default")
    assert sorted(p.name for p in path.parent.glob("*.toml")) == ["prior-default-gpu.toml", "prior-small.toml"]


def test_a_recipe_can_switch_the_attention_blocks_for_an_ablation(recipe, tmp_path):
    cfg = load_prior_recipe(recipe, {"out": str(tmp_path / "a"), "size": "small"})
    assert cfg.model_config().view_attention and cfg.model_config().local_attention == 3
    off = load_prior_recipe(recipe, {"out": str(tmp_path / "b"), "size": "small", "view_attention": False,
                                     "local_attention": 0})
    model_cfg = off.model_config()
    assert not model_cfg.view_attention and model_cfg.local_attention == 0
    assert model_cfg.widths == cfg.model_config().widths


def test_gradients_average_over_every_parameter_and_keep_unused_ones_empty(tmp_path):
    """One flat all-reduce: parameters no rank used keep no gradient (AdamW skips them, as in one process)."""
    import torch.distributed as dist

    from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorNet
    from vidrestore.train.prior_loop import _average_gradients

    model = PriorNet(PRIOR_CONFIGS["tiny"])
    x = torch.rand(1, 3, 32, 32)
    model.refiner(x, x[:, :1], x, x).mean().backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rv'}", rank=0, world_size=1)
    try:
        assert _average_gradients(model, 1, stop=True) is True
    finally:
        dist.destroy_process_group()
    after = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(after) == set(before) and all(n.startswith("refiner.") for n in after)
    assert all(torch.equal(after[n], before[n]) for n in before)


@pytest.mark.slow
def test_two_processes_share_each_step_and_resume(recipe, tmp_path):
    out = tmp_path / "dp"
    first = train_prior(load_prior_recipe(recipe, {"out": str(out), "steps": 3, "processes": 2}), echo=lambda s: None)
    assert first["step"] == 3 and first["finished"]
    again = train_prior(load_prior_recipe(recipe, {"out": str(out), "steps": 5, "processes": 2}), echo=lambda s: None)
    assert again["step"] == 5
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "peers" for r in records) == 2
    assert not list(out.glob(".rendezvous-*"))
    from vidrestore.weights import read_metadata

    assert read_metadata(out / "final.safetensors")["train.hardware"].endswith("x 2 processes")


def test_a_warm_start_into_cheaper_per_t_parts_keeps_everything_else(tmp_path):
    """A file of the default scales warm-starts a network with the flow head at 1/8 and the refiner at 1/4:
    every other tensor is the file's, those two parts start as built (their corrections zero); a tensor that
    does not fit anywhere else is still refused."""
    import dataclasses

    from safetensors.torch import save_file

    from vidrestore.errors import UsageError
    from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorNet, prior_config_to_json
    from vidrestore.train.prior_loop import warm_start

    torch.manual_seed(0)
    old = PriorNet(PRIOR_CONFIGS["tiny"])
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, str(path),
              metadata={"vidrestore.config": prior_config_to_json(old.config), "vidrestore.format": "2"})
    new = PriorNet(dataclasses.replace(PRIOR_CONFIGS["tiny"], head_scale=8, refine_scale=4))
    built = {k: v.clone() for k, v in new.state_dict().items()}
    warm_start(new, str(path))
    for k, v in new.state_dict().items():
        source = built if k.startswith(("flow_head.", "refiner.")) else old.state_dict()
        assert torch.equal(v, source[k]), k
    other = PriorNet(dataclasses.replace(PRIOR_CONFIGS["tiny"], channels=(8, 8, 16)))
    with pytest.raises(UsageError, match="do not fit"):
        warm_start(other, str(path))


def test_straight_shake_kernels_are_lines_of_their_length():
    """A pan blurs along a straight line: those kernels' support lies on one line as long as asked; the walk's
    curl, the default, does not."""
    g = torch.Generator().manual_seed(3)
    lengths = torch.full((4,), 16.0)
    straight = torch.tensor([True, True, False, False])
    k = shake_kernels(lengths, 25, g, straight=straight)
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(4))
    for kernel, line in zip(k, straight):
        ys, xs = (kernel > 1e-3).nonzero(as_tuple=True)
        pts = torch.stack((xs.float(), ys.float()), dim=1)
        centred = pts - pts.mean(dim=0)
        spread = torch.linalg.svdvals(centred)  # across the line: about a pixel (bilinear splats)
        extent = math.hypot(float(xs.max() - xs.min()), float(ys.max() - ys.min()))
        if line:
            assert float(spread[1]) / float(spread[0]) < 0.15 and 14 <= extent <= 19
        else:
            assert float(spread[1]) / float(spread[0]) > 0.15


def test_a_deeper_restoration_path_warm_starts_as_the_file_it_came_from(tmp_path):
    """`--set blocks=[...]` adds blocks to the restoration path's levels: a warm start from a file with fewer keeps
    every tensor of the file, the added blocks start as the identity, so the deeper network restores exactly as
    the file's did."""
    from safetensors.torch import save_file

    from vidrestore.errors import UsageError
    from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorFlows, PriorNet, prior_config_to_json
    from vidrestore.train.prior_loop import load_prior_recipe, warm_start

    torch.manual_seed(0)
    old = PriorNet(PRIOR_CONFIGS["tiny"]).eval()
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, str(path),
              metadata={"vidrestore.config": prior_config_to_json(old.config), "vidrestore.format": "2"})
    recipe = tmp_path / "r.toml"
    recipe.write_text('arch = "prior"\nsize = "tiny"\n')
    cfg = load_prior_recipe(recipe, {"blocks": [1, 0, 2, 3]})
    assert cfg.model_config().blocks == (1, 0, 2, 3)
    new = PriorNet(cfg.model_config()).eval()
    assert sum(p.numel() for p in new.parameters()) > sum(p.numel() for p in old.parameters())
    warm_start(new, str(path))
    frames = torch.rand(1, 4, 3, 32, 32)
    prior = PriorFlows(*(torch.randn(1, 2, 32, 32) for _ in range(3)))
    with torch.no_grad():
        a, ai = old(frames, torch.tensor([0.5]), prior)
        b, bi = new(frames, torch.tensor([0.5]), prior)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(ai, bi, atol=1e-6)
    with pytest.raises(UsageError, match="blocks"):
        load_prior_recipe(recipe, {"blocks": [1, 1]}).model_config()


def test_blur_weight_adds_a_term_on_the_key_frames_blurred_pixels():
    from types import SimpleNamespace

    from vidrestore.train.prior_loop import PriorTrainConfig, key_loss

    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=g)
    inputs = sharp.unsqueeze(1).repeat(1, 4, 1, 1, 1)
    inputs[:, 1, :, :, :8] = 0.5  # the key frame blurred in a strip
    batch = SimpleNamespace(inputs=inputs, key=sharp)
    plain = PriorTrainConfig(name="t", out="x")
    weighted = PriorTrainConfig(name="t", out="x", blur_weight=4.0)
    assert float(key_loss(sharp, batch, weighted)) == 0.0
    in_strip, elsewhere = sharp.clone(), sharp.clone()
    in_strip[..., :, 2] += 0.1
    elsewhere[..., :, 20] += 0.1
    # without the weight both errors cost alike; with it, the one where the blur was costs more
    assert abs(float(key_loss(in_strip, batch, plain)) - float(key_loss(elsewhere, batch, plain))) < 1e-3
    assert float(key_loss(in_strip, batch, weighted)) > float(key_loss(elsewhere, batch, weighted)) + 0.01
