"""Training: synthetic scenes with exact ground truth, footage samplers, losses, loop, checkpoints, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore.errors import InputError, UsageError
from vidrestore.synth import scenes as S
from vidrestore.synth.footage import decode_video
from vidrestore.train.data import ClipSampler, VideoSampler, adobe_window, interp_window
from vidrestore.train.losses import charbonnier, laplacian_loss, psnr, restoration_loss


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _clean(**kw) -> S.SceneConfig:
    """A scene config without photometric noise/quantization, so ground-truth identities are exact."""
    base = dict(height=40, width=48, factor=4, subframes_per_interval=8, noise=0.0, brightness=0.0, quantize=False)
    base.update(kw)
    return S.SceneConfig(**base)


# ---------------------------------------------------------------------------------------------- scenes


def test_scenes_reproducible_and_seed_dependent():
    cfg = S.SceneConfig(height=32, width=40, factor=4)
    a = S.render_batch(cfg, 3, _gen(7), "cpu")
    b = S.render_batch(cfg, 3, _gen(7), "cpu")
    c = S.render_batch(cfg, 3, _gen(8), "cpu")
    assert a.inputs.shape == (3, 4, 3, 32, 40)
    assert a.key.shape == (3, 3, 32, 40)
    assert a.inter.shape == (3, 3, 3, 32, 40)
    assert torch.allclose(a.times, torch.tensor([0.25, 0.5, 0.75]))
    for name in ("inputs", "key", "inter"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert (a.key - c.key).abs().mean() > 0.01
    for x in (a.inputs, a.key, a.inter):
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_static_scene_blurry_equals_sharp():
    cfg = _clean(static_prob=1.0, exposure=(0.5, 1.0), sharp_prob=0.0)
    s = S.render_batch(cfg, 2, _gen(1), "cpu")
    for k in range(4):
        assert torch.allclose(s.inputs[:, k], s.key, atol=1e-5)
    assert torch.allclose(s.inter, s.key[:, None].expand_as(s.inter), atol=1e-6)


def test_exposure_zero_input_is_sharp_key_and_exposure_blurs():
    sharp = S.render_batch(_clean(exposure=0.0, static_prob=0.0), 3, _gen(2), "cpu", levels=torch.full((3,), 0.8))
    assert torch.equal(sharp.inputs[:, 1], sharp.key)
    blurry = S.render_batch(_clean(exposure=1.0, static_prob=0.0), 3, _gen(2), "cpu", levels=torch.full((3,), 0.8))
    # Same scenes (same seed, exposure drawn after the scene), same sharp key; the inputs differ.
    assert torch.equal(blurry.key, sharp.key)
    assert (blurry.inputs[:, 1] - blurry.key).abs().mean() > 1e-3
    # A blurry frame has less high-frequency energy than its sharp counterpart.
    def hf(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    assert hf(blurry.inputs[:, 1]) < hf(blurry.key)


def test_pan_ground_truth_moves_continuously():
    cfg = _clean(min_objects=0, max_objects=0, factor=8)
    scene = S.sample_scene(cfg, 2, _gen(3), "cpu")
    motion = scene.background_motion.zero_motion()
    motion = replace(motion, vel=torch.tensor([[[8.0, 0.0]], [[0.0, -16.0]]]))  # px per input interval
    scene = replace(scene, background_motion=motion)
    s = S.render_scene_sample(cfg, scene, torch.zeros(2), S.default_times(8))
    for j in range(1, 8):  # target at t = j/8: sample 0 moved right by j px, sample 1 up by 2j px
        inter = s.inter[:, j - 1]
        assert torch.allclose(inter[0, :, :, j:], s.key[0, :, :, :-j], atol=1e-5)
        assert torch.allclose(inter[1, :, : -2 * j], s.key[1, :, 2 * j :], atol=1e-5)
    # Sharp inputs are the frames at t = -1, 0, 1, 2: shifted by -8, 0, 8, 16 px.
    assert torch.allclose(s.inputs[0, 2][:, :, 8:], s.key[0][:, :, :-8], atol=1e-5)
    assert torch.allclose(s.inputs[0, 0][:, :, :-8], s.key[0][:, :, 8:], atol=1e-5)


def test_exact_flows_of_a_pan_and_of_moving_objects():
    """Exact flows: a pure pan gives the pan's displacement everywhere; for a full random scene (camera
    and occluding objects), warping the sharp frame at t = 0 / t = 1 by the flows from time t
    reproduces the frame at t wherever the point is visible at both times."""
    from vidrestore.model.warp import backward_warp

    cfg = _clean(min_objects=0, max_objects=0, factor=4)
    scene = S.sample_scene(cfg, 1, _gen(3), "cpu")
    motion = replace(scene.background_motion.zero_motion(), vel=torch.tensor([[[8.0, -4.0]]]))
    scene = replace(scene, background_motion=motion)
    s = S.render_scene_sample(cfg, scene, torch.zeros(1), S.default_times(4), with_flows=True)
    assert s.flows.shape == (1, 3, 2, 2, 40, 48)
    for j, t in enumerate((0.25, 0.5, 0.75)):  # content at t, pixel p, was at p - t*v at time 0
        assert torch.allclose(s.flows[0, j, 0, 0], torch.full((40, 48), -8.0 * t), atol=1e-4)
        assert torch.allclose(s.flows[0, j, 0, 1], torch.full((40, 48), 4.0 * t), atol=1e-4)
        assert torch.allclose(s.flows[0, j, 1, 0], torch.full((40, 48), 8.0 * (1 - t)), atol=1e-4)

    cfg = S.SceneConfig(height=64, width=96, max_speed=16.0, static_prob=0.0, static_camera_prob=0.0, min_objects=2)
    scene = S.sample_scene(cfg, 2, _gen(5), "cpu", levels=torch.tensor([0.6, 1.0]))
    # every layer's colour is its own texture coordinate (a ramp), so a pixel's colour names the surface
    # point it shows; hard-edged objects, so that each pixel shows one layer
    hb, wb = scene.background.shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, hb), torch.linspace(0, 1, wb), indexing="ij")
    to = scene.objects.shape[-1]
    oy, ox = torch.meshgrid(torch.linspace(0, 1, to), torch.linspace(0, 1, to), indexing="ij")
    objects = scene.objects.clone()
    for k in range(objects.shape[1]):
        objects[:, k, :3] = torch.stack((ox, oy, torch.full_like(ox, (k + 1) / 8)))
        objects[:, k, 3] = (objects[:, k, 3] > 0.5).float()
    scene = replace(scene, background=torch.stack((xx, yy, 0 * xx))[None].repeat(2, 1, 1, 1), objects=objects)
    times = torch.tensor([0.25, 0.5, 0.75])
    for b in range(2):
        frames = S.render_one(scene, b, torch.cat((torch.tensor([0.0, 1.0]), times)))
        both = S.render_flow_one(scene, b, times, (0.0, 1.0))
        assert both.shape == (3, 2, 2, 64, 96)
        for target in (0, 1):
            flow = both[:, target]
            src = frames[target].expand(3, -1, -1, -1)
            warped = (backward_warp(src, flow) - frames[2:]).abs().amax(dim=1)
            unwarped = (src - frames[2:]).abs().amax(dim=1)
            assert float(warped.median()) < 1e-4 < 0.01 < float(unwarped.median())
            # all but occlusions and the view's edges
            assert float((warped < 0.01).float().mean()) > 0.85 > 0.5 > float((unwarped < 0.01).float().mean())
    # a batch renders them with its samples, through the photometric step, and moves with the sample
    batch = S.render_batch(cfg, 2, _gen(6), "cpu", times=times, with_flows=True)
    assert batch.flows.shape == (2, 3, 2, 2, 64, 96) and batch.to("cpu").flows is not None
    assert S.render_batch(cfg, 1, _gen(6), "cpu").flows is None


def test_flow_loss_per_stage_in_full_resolution_pixels():
    from vidrestore.train.losses import LossConfig, flow_loss

    target = torch.zeros(1, 2, 2, 2, 32, 32)
    target[:, :, :, 0] = 4.0  # 4 px to the right everywhere
    exact = [target[..., ::8, ::8] / 8, target[..., ::4, ::4] / 4]  # the same flow on the 1/8 and 1/4 grids
    assert float(flow_loss(exact, target)) < 1e-3
    off = [exact[0], exact[1] + 0.5]  # 0.5 px of the 1/4 grid = 2 full-resolution px, in x and y
    assert abs(float(flow_loss(off, target)) - 1.0) < 1e-2  # (0 + 2) / 2 stages
    key, inter = torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 3, 8, 8)
    on, parts = restoration_loss(key, inter, key, inter, LossConfig(flow_weight=0.1), flows=off, flow_target=target)
    assert abs(float(on) - 0.1) < 1e-3 and "flow" in parts
    plain, parts = restoration_loss(key, inter, key, inter, LossConfig(), flows=off, flow_target=target)
    assert float(plain) == 0.0 and "flow" not in parts


def test_exposure_window_subframes():
    times = S.input_times(7 / 8, 8)
    assert [t.numel() for t in times] == [7] * 4
    assert torch.allclose(times[1], torch.arange(-3, 4, dtype=torch.float32) / 8)
    assert torch.allclose(times[2].mean(), torch.tensor(1.0))
    assert [t.tolist() for t in S.input_times(0.0, 8)] == [[-1.0], [0.0], [1.0], [2.0]]
    with pytest.raises(UsageError):
        S.SceneConfig(height=32, width=32, factor=8, subframes_per_interval=12)


def test_random_times_and_textures_from_folder(tmp_path):
    import cv2

    from vidrestore.synth.textures import TextureBank

    img = (np.random.default_rng(0).random((30, 50, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    bank = TextureBank.from_paths([tmp_path])
    assert len(bank) == 1
    crops = bank.sample(4, 24, 24, _gen(0), "cpu")
    assert crops.shape == (4, 3, 24, 24) and 0 <= float(crops.min()) and float(crops.max()) <= 1
    times = torch.tensor([0.1, 0.37])
    s = S.render_batch(S.SceneConfig(height=24, width=32, factor=4), 2, _gen(5), "cpu", bank, times=times)
    assert s.inter.shape == (2, 2, 3, 24, 32) and torch.equal(s.times, times)


def test_validation_set_is_fixed():
    a = S.validation_set(count=2, height=32, width=32)
    b = S.validation_set(count=3, height=32, width=32)
    assert len(a) == 2 and len(b) == 3
    for x, y in zip(a, b[:2]):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.inter, y.inter)
    assert a[0].inter.shape == (1, 7, 3, 32, 32)
    assert not torch.equal(a[0].key, a[1].key)


# ---------------------------------------------------------------------------------------------- footage


def _write_video(path: Path, values: list[int], size=(32, 24), rate: int = 240) -> None:
    """A lossless clip whose frame n is a flat grey of value values[n]."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        st = out.add_stream("ffv1", rate=rate)
        st.width, st.height, st.pix_fmt = w, h, "bgr0"
        for v in values:
            arr = np.full((h, w, 3), v, dtype=np.uint8)
            for packet in st.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)


def test_decode_video_holds_out_the_first_frames(tmp_path):
    _write_video(tmp_path / "v.mkv", [8 * n for n in range(30)])
    frames = decode_video(tmp_path / "v.mkv", skip_frames=10)
    assert frames[:, 0, 0, 0].tolist() == [8 * n for n in range(10, 30)]
    spread = decode_video(tmp_path / "v.mkv", skip_frames=10, sample_count=5)
    assert min(spread[:, 0, 0, 0].tolist()) >= 80 and len(spread) == 5
    with pytest.raises(InputError):
        decode_video(tmp_path / "v.mkv", skip_frames=30)


def test_adobe_window_indices():
    w = adobe_window(20, factor=8, blur=7)
    assert w.inputs[1] == tuple(range(17, 24))
    assert w.inputs[0] == tuple(range(9, 16)) and w.inputs[3] == tuple(range(33, 40))
    assert w.key == 20 and w.inter == tuple(range(21, 28))
    assert w.times == tuple(j / 8 for j in range(1, 8))
    assert adobe_window(5, factor=2, blur=1).inputs == ((3,), (5,), (7,), (9,))
    assert interp_window(4, 2).inputs == ((2,), (4,), (6,), (8,)) and interp_window(4, 2).inter == (5,)
    m = adobe_window(10, factor=4, blur=3).mirrored(30)
    assert m.key == 19 and m.inputs[1] == (20, 19, 18) and m.inter == (18, 17, 16)


def test_video_sampler_makes_adobe_samples(tmp_path):
    _write_video(tmp_path / "hfr.mkv", [8 * n for n in range(30)])
    frames = decode_video(tmp_path / "hfr.mkv")
    assert frames.shape == (30, 24, 32, 3)
    assert frames[:, 0, 0, 0].tolist() == [8 * n for n in range(30)]
    sampler = VideoSampler([frames], factor=4, blur=[3])
    g = _gen(0)
    for _ in range(3):
        s = sampler.sample(4, 16, g, "cpu")
        assert s.inputs.shape == (4, 4, 3, 16, 16) and s.inter.shape == (4, 3, 3, 16, 16)
        assert torch.allclose(s.times, torch.tensor([0.25, 0.5, 0.75]))
        idx = lambda x: x[..., 0, 0, 0] * 255 / 8  # noqa: E731  frame index encoded in the grey level
        for b in range(4):
            c = float(idx(s.key[b]))
            d = float(idx(s.inter[b, 0])) - c  # +1 forwards, -1 for a time-reversed window
            assert d in (1.0, -1.0)
            # input k: mean of frames c + 4k*d - 1 .. c + 4k*d + 1 = frame c + 4k*d
            assert torch.allclose(idx(s.inputs[b]), torch.tensor([c - 4 * d, c, c + 4 * d, c + 8 * d]), atol=1e-3)
            assert torch.allclose(idx(s.inter[b]), torch.tensor([c + d, c + 2 * d, c + 3 * d]), atol=1e-3)
            assert 1 <= min(c - 4 * d, c + 8 * d) and max(c - 4 * d, c + 8 * d) <= 28


def test_clip_sampler_makes_interpolation_samples():
    frames = torch.arange(20, dtype=torch.uint8).mul(10).view(20, 1, 1, 1).expand(20, 20, 20, 3).contiguous()
    s = ClipSampler([frames], strides=(2,)).sample(3, 16, _gen(1), "cpu")
    idx = s.inputs[..., 0, 0, 0] * 25.5
    assert torch.equal(s.key, s.inputs[:, 1])  # the key target is the sharp input itself
    assert s.inter.shape == (3, 1, 3, 16, 16) and torch.allclose(s.times, torch.tensor([0.5]))
    step = idx[:, 2] - idx[:, 1]
    assert torch.allclose(step.abs(), torch.full((3,), 2.0), atol=1e-3)
    assert torch.allclose(s.inter[:, 0, 0, 0, 0] * 25.5, idx[:, 1] + step / 2, atol=1e-3)


# ---------------------------------------------------------------------------------------------- losses


def test_losses_zero_on_identical_positive_otherwise():
    g = _gen(0)
    x = torch.rand(2, 3, 3, 32, 32, generator=g)
    y = x + 0.05 * torch.randn(x.shape, generator=g)
    assert float(charbonnier(x, x)) == 0.0
    assert float(laplacian_loss(x, x)) == 0.0
    assert float(charbonnier(x, y)) > 0.01
    assert float(laplacian_loss(x, y)) > 0.01
    # The pyramid term sees a fine-detail change that barely moves the mean.
    assert float(laplacian_loss(x, x + 0.02 * torch.randn(x.shape, generator=g))) > 0
    total, parts = restoration_loss(x[:, 0], x, x[:, 0], x)
    assert float(total) == 0.0 and set(parts) == {"key", "inter"}
    assert float(restoration_loss(x[:, 0], y, x[:, 0], x)[0]) > 0
    assert float(psnr(x, x).min()) >= 99


def test_psnr_loss_is_minus_the_mean_psnr_and_weighs_nearly_right_frames_up():
    from vidrestore.train.losses import LossConfig, image_loss, psnr_loss

    g = _gen(1)
    target = 0.25 + 0.5 * torch.rand(3, 3, 16, 16, generator=g)
    noise = torch.randn(target.shape, generator=g)
    scale = torch.tensor([0.001, 0.01, 0.1]).view(3, 1, 1, 1)
    pred = (target + scale * noise).requires_grad_(True)
    loss = psnr_loss(pred, target)
    mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(loss, -(10 * torch.log10(1 / (mse + 1e-8))).mean())
    torch.testing.assert_close(float(-loss.detach()), float(psnr(pred.detach(), target).mean()), atol=0.05, rtol=0)
    loss.backward()
    # the same relative step toward the target is worth the same to every frame: the gradient scales with 1/error
    grad = pred.grad.abs().mean(dim=(1, 2, 3))
    assert float(grad[0]) > 50 * float(grad[2])
    # Charbonnier is the other way round
    pred.grad = None
    image_loss(pred, target, LossConfig()).backward()
    grad_c = pred.grad.abs().mean(dim=(1, 2, 3))
    assert float(grad_c[0]) < float(grad_c[2])
    assert float(image_loss(pred.detach(), target, LossConfig(pixel="psnr"))) == pytest.approx(float(loss.detach()))
    with pytest.raises(ValueError):
        LossConfig(pixel="l2")


# ---------------------------------------------------------------------------------------------- loop


def test_tiny_model_overfits_a_batch():
    from vidrestore.model.network import build_model

    torch.manual_seed(0)
    model = build_model("tiny")
    s = S.render_batch(S.SceneConfig(height=32, width=32, factor=4), 2, _gen(4), "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        key, inter = model(s.inputs, s.times)
        loss, _ = restoration_loss(key, inter, s.key, s.inter)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert max(losses[-3:]) < 0.9 * losses[0]


def _small_cfg(out: Path, **kw):
    from vidrestore.train.config import train_config

    base = dict(out=str(out), size="tiny", steps=3, batch=2, crop=32, warmup=2, val_count=1, val_size=32,
                val_every=2, ckpt_every=2, log_every=1, device="cpu", precision="fp32", factor=4, subframes=8)
    base.update(kw)
    return train_config(base)


def test_train_checkpoint_resume_export(tmp_path):
    from safetensors.torch import load_file

    from vidrestore.train.loop import train
    from vidrestore.weights import read_metadata

    out = tmp_path / "run"
    lines: list[str] = []
    r1 = train(_small_cfg(out), echo=lines.append)
    assert r1.step == 3 and r1.finished
    assert (out / "ckpt" / "model.safetensors").is_file() and (out / "ckpt" / "optim.safetensors").is_file()
    state = json.loads((out / "ckpt" / "state.json").read_text())
    assert state["step"] == 3 and state["model"] == "tiny"
    opt_saved = load_file(str(out / "ckpt" / "optim.safetensors"))
    assert any(k.endswith(".exp_avg") for k in opt_saved) and "rng.cpu" in opt_saved
    meta = read_metadata(out / "final.safetensors")
    assert meta["train.steps"] == "3" and meta["train.finished"] == "true"
    assert "inter_psnr" in json.loads(meta["train.val"])
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert "baseline" in kinds and "val" in kinds and kinds[-1] == "stop"

    with pytest.raises(UsageError):  # an existing checkpoint is never silently overwritten
        train(_small_cfg(out), echo=lines.append)
    with pytest.raises(UsageError):
        train(_small_cfg(out, model="small", resume=True), echo=lines.append)

    r2 = train(_small_cfg(out, steps=5, resume=True), echo=lines.append)
    assert r2.step == 5 and r2.finished
    assert any("resumed" in line and "step 3" in line for line in lines)
    state = json.loads((out / "ckpt" / "state.json").read_text())
    assert state["step"] == 5 and state["seconds"] >= r1.seconds
    opt_now = load_file(str(out / "ckpt" / "optim.safetensors"))
    steps_now = [float(v) for k, v in opt_now.items() if k.endswith(".step")]
    assert steps_now and all(v == 5.0 for v in steps_now)  # optimizer state continued, not restarted


def test_train_init_starts_from_given_weights(tmp_path):
    from vidrestore.train.loop import train
    from vidrestore.weights import model_from_file

    first = train(_small_cfg(tmp_path / "a", steps=1), echo=lambda _: None)
    src = model_from_file(first.export_path).state_dict()
    lines: list[str] = []
    # lr so small that one step barely moves the weights: the run must start from the file
    second = train(_small_cfg(tmp_path / "b", steps=1, init=first.export_path, lr=1e-9), echo=lines.append)
    got = model_from_file(second.export_path).state_dict()
    assert all(torch.allclose(src[k], got[k], atol=1e-6) for k in src)
    assert any("initialised from" in line for line in lines)
    fresh = train(_small_cfg(tmp_path / "c", steps=1, lr=1e-9, seed=5), echo=lambda _: None)
    other = model_from_file(fresh.export_path).state_dict()
    assert not all(torch.allclose(src[k], other[k], atol=1e-6) for k in src)
    with pytest.raises(UsageError):  # a file of another size is refused
        train(_small_cfg(tmp_path / "d", steps=1, model="small", init=first.export_path), echo=lambda _: None)
    # a file that skips the refiner for sharp inputs (v11 style) starts a run too; training runs the refiner
    from vidrestore.model.network import with_options
    from vidrestore.weights import save_weights

    skip = tmp_path / "skip.safetensors"
    save_weights(with_options(model_from_file(first.export_path), refine_sharp=False), skip)
    lines.clear()
    third = train(_small_cfg(tmp_path / "e", steps=1, init=str(skip), lr=1e-9), echo=lines.append)
    assert model_from_file(third.export_path).options.refine_sharp is True
    assert any("refine_sharp=False" in line for line in lines)


def _record_flow_args(monkeypatch) -> list[tuple[bool, bool]]:
    """Spy on the training loop's loss calls: per step, (model stage flows given, target flows given)."""
    from vidrestore.train import loop as L

    seen: list[tuple[bool, bool]] = []
    real = L.restoration_loss

    def spy(*args, **kw):
        seen.append((kw.get("flows") is not None, kw.get("flow_target") is not None))
        return real(*args, **kw)

    monkeypatch.setattr(L, "restoration_loss", spy)
    return seen


def test_train_with_flow_supervision(tmp_path, monkeypatch):
    """--flow-weight: synthetic batches carry exact flows and the model is asked for its stage flows;
    the run trains and exports as usual. Without it, no flows are rendered or requested."""
    from vidrestore.train import loop as L

    seen = _record_flow_args(monkeypatch)
    run = L.train(_small_cfg(tmp_path / "f", flow_weight=0.05), echo=lambda _: None)
    assert run.finished and Path(run.export_path).is_file()
    assert seen and all(s == (True, True) for s in seen)
    seen.clear()
    L.train(_small_cfg(tmp_path / "n"), echo=lambda _: None)
    assert seen and all(s == (False, False) for s in seen)
    with pytest.raises(UsageError):
        _small_cfg(tmp_path / "x", flow_weight=-1.0)


def test_train_stops_cleanly_at_time_budget(tmp_path):
    from vidrestore.train.loop import train

    out = tmp_path / "run"
    r = train(_small_cfg(out, steps=1000, minutes=0.001), echo=lambda _: None)
    assert not r.finished and r.step < 1000
    assert (out / "ckpt" / "state.json").is_file() and Path(r.export_path).is_file()


def test_train_cli(tmp_path):
    from click.testing import CliRunner

    from vidrestore.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["train", "--help"])
    assert res.exit_code == 0 and "--minutes" in res.output
    res = runner.invoke(main, ["train", "--out", str(tmp_path / "x"), "--mix", "clips=1"])
    assert res.exit_code == 2 and "--clips" in res.output
    res = runner.invoke(main, ["train", "--out", str(tmp_path / "r"), "--size", "tiny", "--steps", "1",
                               "--batch", "1", "--crop", "32", "--val-count", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "finished: step 1" in res.output
    assert (tmp_path / "r" / "final.safetensors").is_file()
    res = runner.invoke(main, ["train", "--out", str(tmp_path / "p"), "--size", "tiny", "--steps", "1", "--batch", "1",
                               "--crop", "32", "--val-count", "1", "--device", "cpu", "--pixel-loss", "psnr"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["train", "--out", str(tmp_path / "q"), "--pixel-loss", "l2"])
    assert res.exit_code == 2 and "--pixel-loss" in res.output


@pytest.mark.parametrize("missing", [("fine_flow", "half_flow", "coarse_levels"), ("half_flow", "coarse_levels"),
                                     ("coarse_levels", "static_gate"), ("static_gate", "flow_polish"),
                                     ("flow_polish",)])
def test_train_init_grows_flow_stages_from_older_weights(tmp_path, missing):
    """Weights without the 1/4- and/or 1/2-scale flow stages (tensors), or made under inference options without
    the coarse matching level, the still-region gate or the flow polish (v1/v2 style: none; v3 style: no 1/2
    stage, no coarse level; v8 style: no gate, no polish; v9 style: no polish) start a run with them: new
    stages start as the identity, every other tensor is copied, the run trains under its own options (and
    says so), and under the old options the output is what the old model gave."""
    from vidrestore.model.network import CONFIGS, InferenceOptions, VidRestoreNet, with_options
    from vidrestore.train.loop import train
    from vidrestore.weights import model_from_file, save_weights

    tensors = {f: 0 for f in missing if f in ("fine_flow", "half_flow")}
    switches = {f: 0 for f in missing if f not in tensors}
    torch.manual_seed(3)
    old = VidRestoreNet(replace(CONFIGS["tiny"], **tensors), InferenceOptions(**switches)).eval()
    path = tmp_path / "old.safetensors"
    save_weights(old, path)
    lines: list[str] = []
    run = train(_small_cfg(tmp_path / "b", steps=1, init=str(path), lr=1e-12), echo=lines.append)
    grown = model_from_file(run.export_path).eval()
    assert grown.config == CONFIGS["tiny"] and grown.options == InferenceOptions()
    for stage in ("fine_flow", "half_flow"):
        assert getattr(grown.config, stage) > 0
        assert any(f"{stage} stage start fresh" in line for line in lines) == (stage in missing)
    assert any("other inference options" in line for line in lines)
    src = old.state_dict()
    got = grown.state_dict()
    assert all(torch.allclose(src[k], got[k], atol=1e-6) for k in src)
    # the coarse level moves the attention's windows, the still-region gate changes still pixels and the polish
    # moves the flows, by design: compare under the old options
    grown = with_options(grown, old.options)
    # a smooth moving scene: the grown model gives what the old one gave, up to resampling order
    yy, xx = torch.meshgrid(torch.linspace(0, 6, 64), torch.linspace(0, 6, 64), indexing="ij")
    frames = torch.stack([(0.5 + 0.4 * torch.sin(xx + 0.3 * i) * torch.cos(yy)).expand(3, -1, -1) for i in range(4)])
    with torch.no_grad():
        k_old, i_old = old(frames[None], torch.tensor([0.25, 0.5]))
        k_new, i_new = grown(frames[None], torch.tensor([0.25, 0.5]))
    assert torch.allclose(k_old, k_new, atol=1e-5)
    assert (i_old - i_new).abs().mean() < 2e-3
    # a stage of another width is not grown but refused, like a file of another architecture
    wider = VidRestoreNet(replace(CONFIGS["tiny"], fine_flow=CONFIGS["tiny"].fine_flow * 2))
    save_weights(wider, tmp_path / "wider.safetensors")
    with pytest.raises(UsageError):
        train(_small_cfg(tmp_path / "w", steps=1, init=str(tmp_path / "wider.safetensors")), echo=lambda _: None)
    other = VidRestoreNet(replace(CONFIGS["tiny"], fine_flow=0, ifa_window=3))
    save_weights(other, tmp_path / "other.safetensors")
    with pytest.raises(UsageError):
        train(_small_cfg(tmp_path / "c", steps=1, init=str(tmp_path / "other.safetensors")), echo=lambda _: None)


@pytest.mark.parametrize("clip_key_weight, moves", [(0.0, False), (None, True)])
def test_clip_key_weight_zero_leaves_key_branch_to_synthetic_batches(tmp_path, make_clip, clip_key_weight, moves):
    """With --clip-key-weight 0 a clips-only step gives the key branch no gradient (its key input is
    its own target); by default the key loss applies there as everywhere."""
    from vidrestore.train.loop import train
    from vidrestore.weights import model_from_file, save_weights
    from vidrestore.model.network import build_model

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip("clips/a.mp4", n=12, size=(64, 48), audio=False)
    torch.manual_seed(0)
    start = build_model("tiny")
    for p in start.key_branch.out.parameters():  # a non-zero output layer, so the key path carries gradient
        torch.nn.init.normal_(p, std=0.01)
    save_weights(start, tmp_path / "start.safetensors")
    run = train(_small_cfg(tmp_path / "run", steps=1, init=str(tmp_path / "start.safetensors"), clips=str(clips),
                           clip_scale=1.0, mix_synthetic=0.0, mix_clips=1.0, clip_key_weight=clip_key_weight,
                           lr=1e-3), echo=lambda _: None)
    got = model_from_file(run.export_path)
    before = start.state_dict()
    changed = [k for k, v in got.state_dict().items() if k.startswith("key_branch.") and not torch.equal(v, before[k])]
    assert bool(changed) == moves
    with pytest.raises(UsageError):
        _small_cfg(tmp_path / "bad", clip_key_weight=-1.0)


def test_cli_scene_options_reach_the_generator(tmp_path):
    """--exposure, --sharp-prob and --noise set the synthetic scenes (a key-frame curriculum knob);
    bad values are usage errors."""
    from click.testing import CliRunner

    from vidrestore.cli import main
    from vidrestore.train.loop import DataMix, RunLog

    cfg = _small_cfg(tmp_path / "r", exposure=(0.75, 1.0), sharp_prob=0.0, noise=0.0)
    mix = DataMix(cfg, 32, torch.device("cpu"), RunLog(tmp_path / "log.jsonl", lambda _: None))
    assert (mix.scene.exposure_range, mix.scene.sharp_prob, mix.scene.noise) == ((0.75, 1.0), 0.0, 0.0)
    for bad in (dict(sharp_prob=1.5), dict(noise=-0.1), dict(exposure=(0.5, 1.5))):
        with pytest.raises(UsageError):
            _small_cfg(tmp_path / "bad", **bad)
    res = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "x"), "--sharp-prob", "2"])
    assert res.exit_code != 0 and "--sharp-prob" in res.output


def test_train_only_key_branch_freezes_the_rest_and_skips_in_between_frames(tmp_path, monkeypatch):
    """--train-only key_branch --inter-weight 0: only the key branch's tensors move, no in-between frame
    is asked for, the run resumes only with the same --train-only, and an unknown part is refused."""
    from vidrestore.model.network import build_model
    from vidrestore.train import loop as L
    from vidrestore.weights import model_from_file, save_weights

    torch.manual_seed(0)
    start = build_model("tiny")
    for p in start.key_branch.out.parameters():  # a non-zero output layer, so every key-branch tensor gets gradient
        torch.nn.init.normal_(p, std=0.01)
    save_weights(start, tmp_path / "start.safetensors")
    asked = []
    real_window = type(start)._window

    def spy(self, frames, feats, times, *args):
        asked.append(int(times.shape[-1]))
        return real_window(self, frames, feats, times, *args)

    monkeypatch.setattr(type(start), "_window", spy)
    cfg = _small_cfg(tmp_path / "run", steps=2, init=str(tmp_path / "start.safetensors"), lr=1e-3,
                     train_only=("key_branch",), inter_weight=0.0)
    run = L.train(cfg, echo=lambda _: None)
    assert run.finished
    got = model_from_file(run.export_path).state_dict()
    before = start.state_dict()
    moved = {k.split(".")[0] for k, v in got.items() if not torch.equal(v, before[k])}
    assert moved == {"key_branch"}
    assert 0 in asked  # training steps made no in-between frames (validation still scores them)
    with pytest.raises(UsageError, match="--train-only"):
        L.train(cfg.updated(steps=3, resume=True, train_only=()), echo=lambda _: None)
    assert L.train(cfg.updated(steps=3, resume=True), echo=lambda _: None).step == 3
    with pytest.raises(UsageError, match="key_brunch"):
        L.train(_small_cfg(tmp_path / "bad", train_only=("key_brunch",)), echo=lambda _: None)
    with pytest.raises(UsageError, match="nothing to train"):
        _small_cfg(tmp_path / "zero", key_weight=0.0, inter_weight=0.0)


def _pan_sample(shift: float = 2.0, size: int = 64) -> "S.Sample":
    """A clip-style sample of a smooth random texture panning right by ``shift`` px per frame:
    inputs at frames -2, 0, 2, 4 (stride 2) and the true frame 1 as the one in-between target."""
    g = torch.Generator().manual_seed(3)
    tex = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 24, generator=g), size=(size, 2 * size),
                                          mode="bicubic", align_corners=False).clamp(0, 1)

    def frame(k: float) -> torch.Tensor:  # content moves right: frame_k(x) = tex(x - k * shift)
        xs = torch.linspace(-1, 1, size * 2)[size // 2: size // 2 + size] - 2 * k * shift / (2 * size)
        ys = torch.linspace(-1, 1, size)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
        return torch.nn.functional.grid_sample(tex, grid, align_corners=True)[0]

    inputs = torch.stack([frame(k) for k in (-2, 0, 2, 4)])[None]
    return S.Sample(inputs, inputs[:, 1], frame(1)[None, None], torch.tensor([0.5]))


def test_teacher_flows_of_a_pan_point_back_to_both_inputs():
    """DIS from the true in-between frame: side 0 points back to F(i) (-shift), side 1 forward to F(i+1)."""
    from vidrestore.train.teacher import teacher_flows, with_teacher_flows

    s = _pan_sample(shift=2.0)
    f = teacher_flows(s)
    assert f.shape == (1, 1, 2, 2, 64, 64)
    core = f[0, 0, :, :, 12:-12, 12:-12]
    for side, want in ((0, -2.0), (1, 2.0)):
        fx, fy = core[side, 0], core[side, 1]
        known = torch.isfinite(fx) & torch.isfinite(fy)
        assert known.float().mean() > 0.9
        assert abs(float(fx[known].median()) - want) < 0.3 and abs(float(fy[known].median())) < 0.3
    assert with_teacher_flows(s).flows is not None

    # a target frame that no input explains (new content): its flows are unknown, not invented
    s_bad = S.Sample(s.inputs, s.key, 1.0 - s.inter, s.times)
    assert torch.isnan(teacher_flows(s_bad)).float().mean() > 0.5


def test_flow_loss_skips_unknown_target_flows():
    from vidrestore.train.losses import flow_loss

    torch.manual_seed(0)
    target = torch.randn(1, 1, 2, 2, 16, 16)
    pred = torch.zeros(1, 1, 2, 2, 16, 16, requires_grad=True)
    full = flow_loss([pred], target).detach()
    holes = target.clone()
    holes[..., :8, :] = float("nan")
    part = flow_loss([pred], holes)
    assert torch.isfinite(part) and 0 < float(part.detach())
    assert abs(float(part.detach()) - float(flow_loss([pred[..., 8:, :]], target[..., 8:, :]).detach())) < 1e-6
    part.backward()
    assert torch.isfinite(pred.grad).all() and float(pred.grad[..., :8, :].abs().sum()) == 0.0
    assert float(flow_loss([pred], torch.full_like(target, float("nan"))).detach()) == 0.0
    assert float(full) > 0


def test_clip_flow_weight_adds_teacher_flows_to_clip_batches(tmp_path, make_clip, monkeypatch):
    from vidrestore.train import loop as L

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip("clips/a.mp4", n=12, size=(64, 48), audio=False)
    seen = _record_flow_args(monkeypatch)
    run = L.train(_small_cfg(tmp_path / "run", steps=2, clips=str(clips), clip_scale=1.0, mix_synthetic=0.0,
                             mix_clips=1.0, clip_flow_weight=0.05), echo=lambda _: None)
    assert run.finished and seen and all(s == (True, True) for s in seen)
    for bad in (dict(clip_flow_weight=-1.0), dict(clip_flow_weight=0.1)):  # negative; no --clips
        with pytest.raises(UsageError, match="--clip-flow-weight"):
            _small_cfg(tmp_path / "bad", **bad)


# ---------------------------------------------------------------------------------------------- config


def test_train_config_groups_the_flat_options():
    """Every train option has one flat name (the CLI flag's), whatever part of TrainConfig holds it; unknown
    names and bad values are usage errors, and updated() changes some options and keeps the rest."""
    from vidrestore.model.network import InferenceOptions
    from vidrestore.train.config import train_config

    cfg = train_config({"out": "x", "size": "tiny", "max-speed": 32, "mix": "synthetic=0.6,clips=0.4",
                        "clips": "c", "key_weight": 3, "pixel_loss": "psnr", "max_steps": 5, "steps": 9,
                        "options": {"static_gate": 0.0}, "model_changes": {"fine_flow": 0},
                        "train_only": "key_branch", "val_every": 7})
    assert (cfg.model.size, cfg.data.max_speed, cfg.data.mix()) == ("tiny", 32, {"synthetic": 0.6, "clips": 0.4, "videos": 0.0})
    assert (cfg.loss.key_weight, cfg.loss.pixel, cfg.run.val_every) == (3, "psnr", 7)
    assert (cfg.schedule.steps, cfg.schedule.last_step) == (9, 5)
    assert cfg.model.options == InferenceOptions(static_gate=0.0) and cfg.model.config.fine_flow == 0
    assert cfg.model.train_only == ("key_branch",)
    assert cfg.loss.for_source("clips").key_weight == 3 and cfg.updated(clip_key_weight=0).loss.for_source("clips").key_weight == 0
    later = cfg.updated(steps=20, resume=True)
    assert (later.schedule.steps, later.run.resume, later.data.max_speed) == (20, True, 32)
    for bad in ({"stepz": 1}, {"pixel_loss": "l2"}, {"options": {"coarse_level": 1}}, {"model_changes": {"width": 3}},
                {"size": "huge"}, {"max_steps": 0}):
        with pytest.raises(UsageError):
            train_config({"out": "x", **bad})
    with pytest.raises(UsageError):
        train_config({"size": "tiny"})  # no out


def test_train_cli_defaults_are_the_config_defaults():
    """The CLI passes only the options given, so the defaults --help shows must be TrainConfig's own."""
    from vidrestore.cli.train import train as command
    from vidrestore.train.config import FIELDS, option_name, train_config

    cfg = train_config({"out": "x"})
    checked = 0
    for param in command.params:
        plain = isinstance(param.default, (int, float, str, tuple, list))  # not None, not click's "unset"
        if param.name in ("out", "mix") or getattr(param, "is_flag", False) or not plain \
                or param.name not in {*FIELDS, "pixel_loss"}:
            continue
        name = option_name(param.name)
        want = getattr(getattr(cfg, FIELDS[name]), name)
        got = tuple(param.default) if isinstance(param.default, (list, tuple)) else param.default
        assert got == want, (param.name, got, want)
        checked += 1
    assert checked > 20


# ---------------------------------------------------------------------------------------------- recipes

ROOT = Path(__file__).resolve().parents[1]

_TINY_RECIPE = """
name = "tiny-chain"

[defaults]
size = "tiny"
batch = 1
crop = 32
warmup = 1
factor = 4
val_count = 1
val_size = 32
val_every = 100
log_every = 1
device = "cpu"
precision = "fp32"
textures = ["${DATA}/reds_000"]

[[stages]]
name = "a"
steps = 2
lr = 1e-3
options = { static_gate = 0.0 }

[[stages]]
name = "b"
init = "stage:a"
steps = 1
lr = 1e-2
seed = 3

[[stages]]
name = "g"
kind = "graft"
base = "stage:b"
donor = "stage:a"
parts = ["key_branch"]

[[stages]]
name = "c"
init = "stage:g"
steps = 1
lr = 1e-9
train_only = ["refiner"]

[options]
flow_polish = 0
refine_sharp = false
"""


def _recipe(args: list[str]):
    from click.testing import CliRunner

    from vidrestore.cli import main
    from conftest import ASSETS

    return CliRunner().invoke(main, ["train", "--data", str(ASSETS), *args])  # ${DATA}/reds_000: the committed frames


def test_train_recipe_runs_its_chain_resumes_and_exports(tmp_path):
    """``train --recipe``: stages run in order into OUT/STAGE/ (each from the one it names), a graft stage
    takes a part from another stage, the export carries the recipe's options and chain; an interrupted stage
    resumes, a finished one is skipped, and a stage whose input changed since is refused."""
    from vidrestore.model.network import InferenceOptions
    from vidrestore.weights import model_from_file, read_metadata

    path = tmp_path / "tiny.toml"
    path.write_text(_TINY_RECIPE)
    out = tmp_path / "runs"
    base = ["--recipe", str(path), "--out", str(out)]
    res = _recipe([*base, "--stage", "c"])
    assert res.exit_code == 2 and "stage g, has not finished" in res.output
    res = _recipe([*base, "--minutes", "0.0001"])  # out of time at once: stage a checkpoints and pauses
    assert res.exit_code == 0, res.output
    assert "stage a paused at step 0" in res.output and not (out / "final.safetensors").exists()
    res = _recipe(base)
    assert res.exit_code == 0, res.output
    assert "resumed" in res.output and "finished: recipe tiny-chain" in res.output
    for name in "abgc":
        assert (out / name / "final.safetensors").is_file() and (out / name / "stage.json").is_file()
    a, b, g, c = (model_from_file(out / name / "final.safetensors") for name in "abgc")
    assert a.options == InferenceOptions(static_gate=0.0) and b.options == InferenceOptions()
    assert f"initialised from {out / 'a' / 'final.safetensors'}" in res.output
    assert read_metadata(out / "b" / "final.safetensors")["train.init"] == str(out / "a" / "final.safetensors")
    sa, sb, sg, sc = (m.state_dict() for m in (a, b, g, c))
    for k in sg:  # the graft: the key branch from a, everything else from b
        assert torch.equal(sg[k], sa[k] if k.startswith("key_branch.") else sb[k]), k
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if k.startswith("key_branch."))
    assert read_metadata(out / "c" / "final.safetensors")["train.init"] == str(out / "g" / "final.safetensors")
    assert all(torch.equal(sc[k], sg[k]) for k in sc if not k.startswith("refiner."))  # c trained the refiner only
    final = model_from_file(out / "final.safetensors")
    assert final.options == InferenceOptions(flow_polish=0, refine_sharp=False)
    assert all(torch.equal(v, sc[k]) for k, v in final.state_dict().items())
    meta = read_metadata(out / "final.safetensors")
    chain = json.loads(meta["recipe.stages"])
    assert [(s["stage"], s.get("init") or s.get("base")) for s in chain] == [
        ("a", None), ("b", "stage:a"), ("g", "stage:b"), ("c", "stage:g")]
    assert meta["recipe.name"] == "tiny-chain" and json.loads(meta["recipe.options"]) == {"flow_polish": 0, "refine_sharp": False}
    sha = (out / "final.safetensors").read_bytes()

    res = _recipe(base)  # everything done: nothing trains, the export is the same file
    assert res.exit_code == 0 and res.output.count("done earlier") == 4 and "training into" not in res.output
    assert (out / "final.safetensors").read_bytes() == sha
    res = _recipe([*base, "--stage", "a", "--set", "steps=3"])  # a trains on: b was made from another a
    assert res.exit_code == 0 and "resumed" in res.output, res.output
    res = _recipe([*base, "--set", "steps=3", "--stage", "b"])
    assert res.exit_code == 2 and "remove" in res.output and str(out / "b") in res.output


def test_train_recipe_refuses_bad_recipes_and_options(tmp_path):
    path = tmp_path / "r.toml"
    for text, message in (
        ('[[stages]]\nname = "a"\ninit = "stage:b"\n', "names no earlier stage"),
        ('[[stages]]\nname = "a"\nstepz = 2\n', "stepz"),
        ('[[stages]]\nname = "a"\n[[stages]]\nname = "a"\n', "two stages"),
        ('[[stages]]\nname = "a"\nkind = "graft"\nbase = "x"\n', "base, donor and parts"),
        ('[[stages]]\nname = "a"\nout = "x"\n', "recipe runner"),
        ('[[stages]]\nname = "a"\nsize = "tiny"\ntrain_only = ["key_brunch"]\n', "key_brunch"),
        ('[[stages]]\nname = "a"\nclips = "${DATA}/nothing-here"\n', "does not exist"),
        ('name = "x"\n', "no [[stages]]"),
        ('[[stages]]\nname = "a"\n[options]\nstatic_gat = 1\n', "static_gat"),
    ):
        path.write_text(text)
        res = _recipe(["--recipe", str(path), "--out", str(tmp_path / "o"), "--dry-run"])
        assert res.exit_code == 2 and message in res.output, (text, res.output)
    path.write_text('[[stages]]\nname = "a"\n')
    res = _recipe(["--recipe", str(path), "--batch", "2"])
    assert res.exit_code == 2 and "--batch with --recipe" in res.output
    res = _recipe(["--recipe", str(path), "--set", "nonsense"])
    assert res.exit_code == 2 and "NAME=VALUE" in res.output


def test_small_v11_recipe_is_the_shipped_chain():
    """recipes/small-v11.toml: v1 -> v2 -> v3 -> v5 -> v6 -> v7 (flows, key) -> v8 (flows0, graft, flows, key), each
    stage under the inference options it trained with, and v11's options (the registry entry's) at the end."""
    from vidrestore.model.network import InferenceOptions
    from vidrestore.train.recipe import Runner, load_recipe
    from vidrestore.weights import DEFAULT_WEIGHTS, load_registry
    from conftest import ASSETS

    recipe = load_recipe(ROOT / "recipes" / "small-v11.toml", data=ASSETS)  # ${DATA}/reds_000 and ${DATA}/clips
    runner = Runner(recipe, "unused", echo=lambda _: None)  # every stage's config is built and checked
    names = [s.name for s in recipe.stages]
    assert names == ["v1", "v2", "v3", "v5", "v6", "v7-flows", "v7-key", "v8-flows0", "v8-graft", "v8-flows", "v8-key"]
    for before, stage in zip(recipe.stages, recipe.stages[1:]):
        assert stage.inputs.get("init", stage.inputs.get("base")) == f"stage:{before.name}", stage.name
    graft = recipe.stage("v8-graft")
    assert (graft.kind, graft.donor, graft.parts) == ("graft", "stage:v7-key", ("key_branch",))
    cfg = runner.configs
    no_switches = dict(static_gate=0.0, flow_polish=0)
    for name in ("v1", "v2", "v3"):
        assert cfg[name].model.options == InferenceOptions(coarse_levels=0, **no_switches)
    assert cfg["v1"].model.config.fine_flow == cfg["v2"].model.config.fine_flow == 0 < cfg["v3"].model.config.fine_flow
    assert cfg["v5"].model.options == InferenceOptions(coarse_match=-1.0, **no_switches)  # before the match gate
    for name in names[4:]:
        if name != "v8-graft":
            assert cfg[name].model.options == InferenceOptions(**no_switches), name
    steps = {n: (c.schedule.steps, c.schedule.last_step) for n, c in cfg.items()}
    assert steps == {"v1": (4500, 4500), "v2": (2600, 2600), "v3": (3500, 3500), "v5": (2000, 2000), "v6": (1300, 1300),
                     "v7-flows": (1800, 1800), "v7-key": (4500, 4500), "v8-flows0": (700, 700),
                     "v8-flows": (1600, 1588), "v8-key": (4500, 4500)}
    assert cfg["v8-flows"].model.train_only == ("encoder", "ala", "ifa", "flow_head", "fine_flow", "refiner")
    assert cfg["v7-key"].model.train_only == cfg["v8-key"].model.train_only == ("key_branch",)
    assert all(c.run.device == "cpu" and c.run.precision == "fp32" and c.data.batch == 8 for c in cfg.values())
    entry = load_registry()[DEFAULT_WEIGHTS]
    assert recipe.options == dict(entry.options) and recipe.name == DEFAULT_WEIGHTS
