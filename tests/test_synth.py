"""Synthetic scenes with exact ground truth, footage decoding for training, and the training losses (the
training loop itself: ``test_prior_training.py``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore.errors import InputError, UsageError
from vidrestore.synth import scenes as S
from vidrestore.synth.footage import decode_video
from vidrestore.train.losses import charbonnier, laplacian_loss


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
    from vidrestore.io.clips import write_video

    w, h = size
    write_video(path, (np.full((h, w, 3), v, dtype=np.uint8) for v in values), rate, codec="ffv1", pix_fmt="bgr0")


def test_decode_video_holds_out_the_first_frames(tmp_path):
    _write_video(tmp_path / "v.mkv", [8 * n for n in range(30)])
    frames = decode_video(tmp_path / "v.mkv", skip_frames=10)
    assert frames[:, 0, 0, 0].tolist() == [8 * n for n in range(10, 30)]
    spread = decode_video(tmp_path / "v.mkv", skip_frames=10, sample_count=5)
    assert min(spread[:, 0, 0, 0].tolist()) >= 80 and len(spread) == 5
    with pytest.raises(InputError):
        decode_video(tmp_path / "v.mkv", skip_frames=30)


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


def test_blur_mask_weighs_where_the_blur_was():
    from vidrestore.train.losses import blur_mask, masked_charbonnier

    sharp = torch.zeros(2, 3, 16, 16)
    sharp[..., 8:] = 1.0  # an edge
    blurred = sharp.clone()
    blurred[0, :, :, 6:10] = 0.5  # item 0: the edge smeared (a moving part); item 1: unchanged
    mask = blur_mask(blurred, sharp)
    assert mask.shape == (2, 1, 16, 16)
    assert float(mask[0, 0, 0, 6:10].min()) == 1.0 and float(mask[0, 0, :, :6].max()) == 0.0
    assert float(mask[1].max()) == 0.0
    # the same error costs more where the blur was than where the frame was already sharp
    err_moving, err_static = sharp.clone(), sharp.clone()
    err_moving[0, :, :, 7] += 0.2
    err_static[0, :, :, 2] += 0.2
    assert float(masked_charbonnier(err_moving, sharp, mask)) > 0.005  # 0.2 on 1 column in 32
    assert float(masked_charbonnier(err_static, sharp, mask)) == 0.0
    assert float(masked_charbonnier(sharp, sharp, mask)) == 0.0
