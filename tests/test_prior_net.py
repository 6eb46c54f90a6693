"""The flow-prior network, its host-side prior and its weights files (fast: the tiny size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import reds_rgb
from vidrestore.errors import WeightsError
from vidrestore.flow import dis_interpolate
from vidrestore.model.attention import window_products
from vidrestore.model.prior_net import (PRIOR_CONFIGS, PriorConfig, PriorNet, PriorFlows, build_prior_model,
                                        prior_config_from_dict, prior_config_to_json)
from vidrestore.prior import batch_prior, window_prior
from vidrestore.weights import META_CONFIG, model_from_file, read_metadata, save_weights


def real_window(crop: tuple[int, int] = (176, 320)) -> list[np.ndarray]:
    """Four consecutive real frames (REDS), every other one: real motion between them."""
    h, w = crop
    return [reds_rgb(i)[:h, :w] for i in (0, 2, 4, 6)]


def tensors(frames: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(f).permute(2, 0, 1).float().unsqueeze(0) / 255 for f in frames]


def randomize(model: PriorNet, seed: int = 0) -> PriorNet:
    """Every tensor random (the zero-initialised corrections too), as a trained model's would be."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@torch.no_grad()
def test_with_the_corrections_zeroed_the_in_between_frame_is_the_priors_warp_and_blend():
    """The floor: a network as built (every correction at zero) gives DIS flow's warp-and-blend on real
    frames, and the key frame is the input frame."""
    frames = real_window()
    model = build_prior_model("tiny").eval()
    x = tensors(frames)
    feats = [model.encode(f) for f in x]
    times = torch.tensor([0.25, 0.5, 0.75])
    key, inter = model.restore(x, feats, times, window_prior(frames), with_key=True)
    assert torch.equal(key, x[1])
    for sharp in (False, True):
        _, inter = model.restore(x, feats, times, window_prior(frames), with_key=False, sharp=sharp)
        ours = (inter[0].clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()
        for j, ref in enumerate(dis_interpolate(frames[1], frames[2], times.tolist())):
            diff = np.abs(ours[j] - ref.astype(np.float32))
            # the same sums in another order (OpenCV's remap and blend, torch's): a rounding apart at most
            assert diff.mean() < 0.01 and diff.max() <= 1, (j, diff.mean(), diff.max())


@torch.no_grad()
def test_a_frame_alone_with_replicated_neighbours():
    """The ends of a video, scene cuts, a still: all four inputs are the same frame. The prior is zero,
    and a trained network (random tensors here) still gives finite frames of the right size."""
    frame = real_window()[1]
    prior = window_prior([frame] * 4)
    assert all(float(f.abs().max()) < 1e-3 for f in prior)
    model = randomize(build_prior_model("tiny")).eval()
    x = tensors([frame] * 4)
    key, inter = model.restore(x, [model.encode(f) for f in x], torch.tensor([0.5]), prior)
    assert key.shape == x[1].shape and inter.shape == (1, 1, *x[1].shape[1:])
    assert torch.isfinite(key).all() and torch.isfinite(inter).all()


@torch.no_grad()
def test_the_restoration_path_is_local_tiles_agree_with_the_whole_frame():
    """No global pooling: the restorer's output at a pixel depends on its neighbourhood only, so a tile
    with enough context equals the whole frame's core."""
    model = randomize(build_prior_model("tiny"), seed=3).eval()
    g = torch.Generator().manual_seed(1)
    x = [torch.rand(1, 3, 128, 128, generator=g) for _ in range(3)]
    motion = 8 * torch.randn(1, 4, 128, 128, generator=g)  # tiny takes the flows to its views too
    whole = model.restorer(*x, None, motion)
    part = model.restorer(*[t[..., :, :96] for t in x], None, motion[..., :96])
    assert torch.allclose(whole[..., 8:120, 8:40], part[..., 8:120, 8:40], atol=1e-5)


def test_batch_prior_matches_window_prior_and_uses_threads():
    from concurrent.futures import ThreadPoolExecutor

    a, b = real_window((64, 96)), real_window((64, 96))[::-1]
    one = [window_prior(a), window_prior(b)]
    with ThreadPoolExecutor(2) as pool:
        both = batch_prior([a, b], pool)
    for name in PriorFlows._fields:
        got = getattr(both, name)
        assert got.shape == (2, 2, 64, 96)
        assert torch.equal(got[0:1], getattr(one[0], name)) and torch.equal(got[1:2], getattr(one[1], name))


def test_frames_must_be_a_multiple_of_the_model_multiple():
    model = build_prior_model("tiny")
    with pytest.raises(ValueError, match="multiple of 16"):
        model.encode(torch.zeros(1, 3, 360, 640))


def test_weights_round_trip_and_crafted_configs(tmp_path):
    model = randomize(build_prior_model("tiny"))
    path = tmp_path / "prior.safetensors"
    save_weights(model, path, {"train.recipe": "test"})
    back = model_from_file(path)
    assert isinstance(back, PriorNet) and back.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))

    meta = read_metadata(path)
    tensors = {k: v.contiguous() for k, v in back.state_dict().items()}

    def crafted(change: dict) -> WeightsError:
        from safetensors.torch import save_file

        cfg = {**json.loads(meta[META_CONFIG]), **change}
        p = tmp_path / "crafted.safetensors"
        save_file(tensors, str(p), metadata={**meta, META_CONFIG: json.dumps(cfg)})
        with pytest.raises(WeightsError) as err:
            model_from_file(p)
        return err.value

    assert "out of range" in str(crafted({"widths": [200000, 8, 12, 16]}))  # refused before anything is built
    assert "not a flow-prior network config" in str(crafted({"arch": "other"}))
    assert "unknown model config fields" in str(crafted({"extra": 1}))
    assert "do not fit" in str(crafted({"refine": 9}))  # the file's tensors are not that config's


def test_sizes_build_and_say_their_multiple():
    for cfg in PRIOR_CONFIGS.values():
        assert cfg.multiple == 16
        with torch.device("meta"):
            PriorNet(cfg)
    with pytest.raises(ValueError):
        PriorConfig("bad", widths=(8, 8), blocks=(1,))


def _floor(frames: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """What the untrained flow-prior network must give in joint mode: each frame, then DIS flow's
    warp-and-blend at i + j/factor (frame copies after the last frame)."""
    times = [j / factor for j in range(1, factor)]
    out: list[np.ndarray] = []
    for i, f in enumerate(frames):
        out.append(f)
        out += dis_interpolate(f, frames[i + 1], times) if i + 1 < len(frames) else [f] * (factor - 1)
    return out


@pytest.mark.parametrize("mode, factor, extra", [("joint", 4, {}), ("interp", 2, {"tile": 96}),
                                                  ("joint", 2, {"ensemble": 2})])
def test_the_engine_runs_the_flow_prior_network_with_its_prior(mode, factor, extra):
    """Through the one run path (engine, tiles, the mirrored ensemble, whose prior is mirrored too) the
    untrained network gives the prior's warp-and-blend: the flows reach it, for the right frames."""
    from conftest import make_engine

    frames = [reds_rgb(i) for i in range(0, 10, 2)]
    engine = make_engine(build_prior_model("tiny").eval(), factor=factor, mode=mode, **extra)
    out = list(engine.process(frames))
    expect = _floor(frames, factor)
    assert len(out) == len(expect)
    for got, ref in zip(out, expect):
        assert np.abs(got.astype(np.float32) - ref).mean() < 0.05


def test_no_flow_is_computed_across_a_scene_cut():
    from conftest import make_engine

    frames = [reds_rgb(0), reds_rgb(2), 255 - reds_rgb(4), 255 - reds_rgb(6)]
    engine = make_engine(build_prior_model("tiny").eval(), factor=2, mode="joint")
    out = list(engine.process(frames, cuts=[False, False, True, False]))
    assert np.array_equal(out[3], frames[1])  # the last frame before the cut is repeated, not blended
    assert np.abs(out[1].astype(np.float32) - dis_interpolate(frames[0], frames[1], [0.5])[0]).mean() < 0.05


# -- ported from the old network's tests: shapes, dtypes, times, features, configs ----------------------------


def random_prior(b: int, h: int, w: int, seed: int = 0, scale: float = 2.0) -> PriorFlows:
    g = torch.Generator().manual_seed(seed)
    return PriorFlows(*(torch.randn(b, 2, h, w, generator=g) * scale for _ in range(3)))


@pytest.fixture(scope="module")
def tiny():
    return randomize(build_prior_model("tiny"), seed=5).eval()


@torch.no_grad()
def test_shapes_dtype_per_sample_and_empty_times(tiny):
    x = torch.rand(2, 4, 3, 48, 64)
    prior = random_prior(2, 48, 64)
    key, inter = tiny(x, torch.tensor([0.25, 0.5, 0.75]), prior)
    assert key.shape == (2, 3, 48, 64) and key.dtype == torch.float32
    assert inter.shape == (2, 3, 3, 48, 64) and torch.isfinite(inter).all()
    _, both = tiny(x, torch.tensor([[0.5], [0.25]]), prior)
    _, a = tiny(x[:1], torch.tensor([0.5]), PriorFlows(*(f[:1] for f in prior)))
    _, b = tiny(x[1:], torch.tensor([0.25]), PriorFlows(*(f[1:] for f in prior)))
    torch.testing.assert_close(both[0], a[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both[1], b[0], atol=1e-5, rtol=1e-4)
    _, none = tiny(x, torch.zeros(0), prior)
    assert none.shape == (2, 0, 3, 48, 64)


@torch.no_grad()
def test_bf16_forward():
    model = randomize(build_prior_model("tiny")).to(dtype=torch.bfloat16).eval()
    x = torch.rand(1, 4, 3, 32, 32, dtype=torch.bfloat16)
    key, inter = model(x, torch.tensor([0.5]), random_prior(1, 32, 32))
    assert key.dtype == torch.bfloat16 and inter.dtype == torch.bfloat16
    assert torch.isfinite(key.float()).all() and torch.isfinite(inter.float()).all()


@torch.no_grad()
def test_features_are_reusable_across_windows(tiny):
    """Encoding each frame once and reusing the features gives the same result as forward()."""
    frames = [torch.rand(1, 3, 32, 32) for _ in range(5)]
    prior = random_prior(1, 32, 32, seed=2)
    feats = [tiny.encode(f) for f in frames]
    k1, i1 = tiny.restore(frames[1:5], feats[1:5], torch.tensor([0.5]), prior)
    k2, i2 = tiny(torch.stack(frames[1:5], dim=1), torch.tensor([0.5]), prior)
    torch.testing.assert_close(k1, k2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(i1, i2, atol=1e-5, rtol=1e-4)


def test_config_json_round_trip():
    for cfg in PRIOR_CONFIGS.values():
        data = json.loads(prior_config_to_json(cfg))
        assert data["arch"] == "prior" and prior_config_from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown model config fields"):
        prior_config_from_dict({**data, "latent_blocks": 2})
    with pytest.raises(ValueError, match="not a flow-prior"):
        prior_config_from_dict({**data, "arch": "other"})


def test_sizes_are_ordered_by_parameters():
    counts = {}
    for name in PRIOR_CONFIGS:
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in build_prior_model(name).parameters())
    assert counts["tiny"] < counts["small"] < counts["default"] < 5_000_000


def test_window_products_match_direct_products():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 9, 11, generator=g), torch.randn(2, 5, 9, 11, generator=g)
    r = 2
    got = window_products(a, b, r)
    padded = torch.nn.functional.pad(b, (r, r, r, r), mode="replicate")
    k = 0
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = padded[..., r + dy:r + dy + 9, r + dx:r + dx + 11]
            torch.testing.assert_close(got[:, k], (a * shifted).sum(dim=1), atol=1e-5, rtol=1e-5)
            k += 1
    assert k == got.shape[1] == (2 * r + 1) ** 2


def test_the_attention_blocks_start_as_the_identity_and_files_without_them_still_load():
    """small has the seeds' attention in its restoration path (across views, within the latent); a new block
    changes nothing, so weights trained before them warm-start a network with them exactly."""
    from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorConfig, PriorFlows, PriorNet

    torch.manual_seed(0)
    cfg = PRIOR_CONFIGS["small"]
    assert cfg.view_attention and cfg.local_attention > 0
    plain = PriorNet(PriorConfig("small"))
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.02 * torch.randn_like(p))  # a network that is not at its floor
    full = PriorNet(cfg)
    missing, unexpected = full.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".views." in k or ".local." in k for k in missing)
    x = torch.rand(2, 4, 3, 32, 48)
    prior = PriorFlows(*(torch.randn(2, 2, 32, 48) for _ in range(3)))
    times = torch.tensor([0.25, 0.5])
    with torch.no_grad():
        a = plain(x, times, prior)
        b = full(x, times, prior)
    assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6)


def test_local_attention_depends_only_on_the_window_around_a_pixel():
    """As a convolution does: a crop gives the same result as the whole latent wherever the crop reaches the
    radius around a pixel, so tiles give the same frames as the whole frame."""
    from vidrestore.model.attention import local_attention

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 8, 20, 20).unbind(0)
    whole = local_attention(q, k, v, 2)
    part = local_attention(q[..., 4:16, 3:17], k[..., 4:16, 3:17], v[..., 4:16, 3:17], 2)
    assert torch.allclose(whole[..., 6:14, 5:15], part[..., 2:10, 2:12], atol=1e-6)
    assert not torch.allclose(whole[..., 4:6, 3:5], part[..., 0:2, 0:2], atol=1e-3)  # the crop's own border


def test_view_attention_picks_the_view_that_matches_its_query():
    from vidrestore.model.attention import ViewAttention

    torch.manual_seed(0)
    att = ViewAttention(4, 4, dim=4)
    with torch.no_grad():
        att.norm = torch.nn.Identity()
        att.query.weight.copy_(10 * torch.eye(4).view(4, 4, 1, 1))
        att.key.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        att.value.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        att.proj.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        for conv in (att.query, att.key, att.value, att.proj):
            conv.bias.zero_()
    x = torch.zeros(1, 4, 2, 2)
    x[:, 0] = 1.0  # the query looks for channel 0
    views = torch.zeros(1, 3, 4, 2, 2)
    views[:, 1, 0] = 1.0  # only view 1 has it
    views[:, 0, 2] = 1.0
    out = att(x, views) - x
    assert torch.allclose(out[:, 0], torch.ones(1, 2, 2), atol=0.05) and out[:, 2].abs().max() < 0.05


def test_the_restore_stage_makes_the_key_frame_the_network_makes():
    from vidrestore.model.layers import window_features
    from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorFlows, PriorNet
    from vidrestore.train.prior_data import Batch
    from vidrestore.train.prior_loop import restore_stage_key

    torch.manual_seed(0)
    net = PriorNet(PRIOR_CONFIGS["small"])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.rand(2, 4, 3, 32, 32)
    prior = PriorFlows(*(torch.randn(2, 2, 32, 32) for _ in range(3)))
    batch = Batch(x, x[:, 1], x[:, :0], torch.zeros(2, 0), prior, False, "real")
    with torch.no_grad():
        key, _ = net.restore([x[:, i] for i in range(4)], window_features(net.encode, x), batch.times, prior)
    mine = restore_stage_key(net, batch)
    assert torch.allclose(mine, key, atol=1e-5)
    mine.mean().backward()
    assert all(p.grad is None for p in net.encoder.parameters())  # the motion part is held fixed
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.restorer.parameters())


def test_cheaper_per_t_parts_start_as_the_same_network():
    """A flow head at 1/8 scale and a refiner at 1/4 (interp mode's cost, about halved): as built they give the
    frames of the default scales, exactly (their last layers start at zero), and files without the fields load
    as before."""
    import dataclasses

    from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorNet, prior_config_from_dict

    base = dataclasses.replace(PRIOR_CONFIGS["tiny"])
    cheap = dataclasses.replace(base, head_scale=8, refine_scale=4)
    frames = torch.rand(1, 4, 3, 48, 64)
    prior = PriorFlows(*(torch.randn(1, 2, 48, 64) for _ in range(3)))
    out = {}
    for cfg in (base, cheap):
        torch.manual_seed(0)
        m = PriorNet(cfg).eval()
        with torch.no_grad():
            out[cfg.head_scale] = [m(frames, torch.tensor([0.25, 0.5]), prior, sharp=s)[1] for s in (False, True)]
    for a, b in zip(out[4], out[8]):
        assert torch.equal(a, b)
    assert prior_config_from_dict({"name": "x"}).head_scale == 4  # an older file's config
    for bad in ({"head_scale": 2}, {"refine_scale": 8}, {"head_scale": "8"}):
        with pytest.raises(ValueError):
            prior_config_from_dict({"name": "x", **bad})


def test_the_motion_input_starts_at_nothing_and_then_reads_the_flows():
    """``restore_motion``: the restoration path also takes the flows to its two views. Its tensor starts at zero,
    so a file without it warm-starts the network exactly; trained, the key frame and the in-between frames
    depend on the motion; and a file's config says whether it has the input."""
    import dataclasses

    torch.manual_seed(0)
    base = dataclasses.replace(PRIOR_CONFIGS["tiny"], restore_motion=False)
    plain = randomize(PriorNet(base), seed=5).eval()
    moving = PriorNet(dataclasses.replace(base, restore_motion=True)).eval()
    missing, unexpected = moving.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing == ["restorer.motion.weight", "restorer.motion.bias"]
    x = torch.rand(1, 4, 3, 32, 48)
    prior = PriorFlows(*(4 * torch.randn(1, 2, 32, 48) for _ in range(3)))
    times = torch.tensor([0.5])
    with torch.no_grad():
        a, b = plain(x, times, prior), moving(x, times, prior)
        assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6)
        moving.restorer.motion.weight.normal_(0, 0.1)
        c = moving(x, times, prior)
        still = moving(x, times, PriorFlows(*(f * 1.5 for f in prior)))
    assert (c[0] - a[0]).abs().max() > 1e-3 and (c[1] - a[1]).abs().max() > 1e-3
    assert (still[0] - c[0]).abs().max() > 1e-4  # other motion, another key frame
    with pytest.raises(ValueError, match="motion"):
        moving.restorer(*x[:, :3].unbind(1))
    assert PRIOR_CONFIGS["tiny"].restore_motion and not PRIOR_CONFIGS["small"].restore_motion
    cfg = prior_config_from_dict(json.loads(prior_config_to_json(moving.config)))
    assert cfg.restore_motion is True and prior_config_from_dict({"name": "old"}).restore_motion is False
    with pytest.raises(ValueError):
        prior_config_from_dict({"name": "x", "restore_motion": 1})
