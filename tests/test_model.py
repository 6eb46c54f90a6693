"""The network at tiny size with random weights: shapes, dtypes, symmetry, attention cost."""

from __future__ import annotations

import math

import pytest
import torch

from vidrestore.model import CONFIGS, build_model, config_from_json, config_to_json
from vidrestore.model.attention import (
    FactorizedSTAttention,
    InterFrameAttention,
    coarse_descriptors,
    coarse_motion,
)
from vidrestore.model.warp import backward_warp


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("tiny").eval()


def test_shapes_and_dtype(tiny):
    x = torch.rand(2, 4, 3, 40, 56)
    t = torch.tensor([0.25, 0.5, 0.75])
    with torch.no_grad():
        key, inter = tiny(x, t)
    assert key.shape == (2, 3, 40, 56) and key.dtype == torch.float32
    assert inter.shape == (2, 3, 3, 40, 56)
    assert torch.isfinite(inter).all()


def test_per_sample_times_and_empty_times(tiny):
    x = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        _, inter = tiny(x, torch.tensor([[0.5], [0.25]]))
        _, a = tiny(x[:1], torch.tensor([0.5]))
        _, b = tiny(x[1:], torch.tensor([0.25]))
        _, none = tiny(x, torch.zeros(0))
    torch.testing.assert_close(inter[0], a[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(inter[1], b[0], atol=1e-5, rtol=1e-4)
    assert none.shape == (2, 0, 3, 32, 32)


def test_bf16_forward():
    model = build_model("tiny").to(dtype=torch.bfloat16).eval()
    x = torch.rand(1, 4, 3, 32, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        key, inter = model(x, torch.tensor([0.5]))
    assert key.dtype == torch.bfloat16 and inter.dtype == torch.bfloat16


def test_time_reversal_gives_same_inbetween(tiny):
    """Swapping the pair (and the outer neighbours) and t -> 1-t gives the same in-between frames."""
    x = torch.rand(1, 4, 3, 48, 64)
    t = torch.tensor([0.125, 0.5, 0.875])
    with torch.no_grad():
        _, fwd = tiny(x, t)
        _, rev = tiny(x.flip(1), 1 - t)
    torch.testing.assert_close(fwd, rev, atol=1e-5, rtol=1e-4)


def test_fresh_model_is_identity_on_key_and_blend_like_on_static_scene(tiny):
    """Residual heads start at zero: the key frame passes through, a static pair interpolates to itself."""
    frame = torch.rand(1, 3, 32, 48)
    x = frame.unsqueeze(1).expand(1, 4, 3, 32, 48)
    with torch.no_grad():
        key, inter = tiny(x, torch.tensor([0.5]))
    torch.testing.assert_close(key, frame)
    # a static scene: whatever the flow, the refiner's residual is zero at init, and warping
    # a frame by the mean attention offset of identical latents stays close to the frame
    assert (inter[:, 0] - frame).abs().mean() < 0.1


def test_encode_rejects_unpadded_size(tiny):
    with pytest.raises(ValueError, match="multiple"):
        tiny.encode(torch.rand(1, 3, 33, 48))


def test_features_are_reusable_across_windows(tiny):
    """Encoding each frame once and reusing the features gives the same result as forward()."""
    frames = [torch.rand(1, 3, 32, 32) for _ in range(5)]
    with torch.no_grad():
        feats = [tiny.encode(f) for f in frames]
        k1, i1 = tiny.restore(frames[1:5], feats[1:5], torch.tensor([0.5]))
        k2, i2 = tiny(torch.stack(frames[1:5], dim=1), torch.tensor([0.5]))
    torch.testing.assert_close(k1, k2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(i1, i2, atol=1e-5, rtol=1e-4)


def test_config_json_round_trip():
    for cfg in CONFIGS.values():
        assert config_from_json(config_to_json(cfg)) == (cfg, {})


def test_config_json_of_older_files_hands_back_their_inference_options():
    """Files before 0.2.0 kept the parameter-free switches in the model config: they come back apart."""
    import json

    from vidrestore.model.network import LEGACY_OPTIONS, InferenceOptions, options_from_dict

    data = json.loads(config_to_json(CONFIGS["small"]))
    data.update(coarse_levels=1, static_gate=0.05, refine_sharp=False)
    cfg, legacy = config_from_json(json.dumps(data))
    assert cfg == CONFIGS["small"] and legacy == {"coarse_levels": 1, "static_gate": 0.05, "refine_sharp": False}
    opts = options_from_dict(legacy, LEGACY_OPTIONS)
    assert opts == InferenceOptions(coarse_levels=1, static_gate=0.05, flow_polish=0, refine_sharp=False)
    with pytest.raises(ValueError, match="unknown"):
        config_from_json(json.dumps({**data, "coarse_level": 1}))


def test_default_size_within_budget():
    n = sum(p.numel() for p in build_model("default").parameters())
    assert n <= 10_000_000
    assert sum(p.numel() for p in build_model("small").parameters()) < n


def test_factorized_attention_memory_is_linear_in_pixels():
    """No (T*H*W)^2 matrix: the largest intermediate grows linearly with the pixel count."""
    att = FactorizedSTAttention(8, spatial_maps=4, temporal_maps=2)
    sizes = {}
    for side in (16, 32):
        largest = 0

        def hook(_m, _i, out):
            nonlocal largest
            largest = max(largest, out.numel())

        handles = [m.register_forward_hook(hook) for m in att.modules() if m is not att]
        q = torch.rand(1, 8, side, side)
        ctx = torch.rand(1, 4, 8, side, side)
        with torch.no_grad():
            y = att(q, ctx)
        for h in handles:
            h.remove()
        assert y.shape == q.shape
        sizes[side] = largest
    assert sizes[32] <= 4.5 * sizes[16]  # 4x pixels -> ~4x memory, not 16x


def test_inter_frame_attention_finds_a_shift():
    """With keys equal to the input features, attention peaks at the true displacement."""
    torch.manual_seed(0)
    ifa = InterFrameAttention(16, 16, 5)
    with torch.no_grad():
        ifa.q.weight.copy_(torch.eye(16).reshape(16, 16, 1, 1) * 8)
        ifa.q.bias.zero_()
        ifa.k.weight.copy_(torch.eye(16).reshape(16, 16, 1, 1) * 8)
        ifa.k.bias.zero_()
        a = torch.randn(1, 16, 24, 24)
        b = torch.roll(a, shifts=(1, 2), dims=(2, 3))  # content moves +2 in x, +1 in y
        _, motion = ifa(a, b)
    core = motion[0, :, 4:-4, 4:-4]
    assert abs(core[0].mean().item() - 2) < 0.2
    assert abs(core[1].mean().item() - 1) < 0.2


def _ifa_reference(ifa: InterFrameAttention, a, b, desc_a, desc_b):
    """The inter-frame attention written the direct way, with F.unfold over the whole window."""
    n, c, h, w = a.shape
    win, r = ifa.window, ifa.window // 2

    def neighbours(x):
        xp = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
        return torch.nn.functional.unfold(xp, win).reshape(n, x.shape[1], win * win, h * w)

    na, nb = ifa.norm(a), ifa.norm(b)
    q = ifa.q(na).reshape(n, ifa.dim, 1, h * w)
    logits = (q * neighbours(ifa.k(nb))).sum(1) / ifa.dim**0.5
    d = desc_a.shape[1]
    logits = logits + ifa.log_match.exp() * (desc_a.reshape(n, d, 1, h * w) * neighbours(desc_b)).sum(1)
    logits = logits + ifa.prior.view(1, -1, 1)
    ones = torch.nn.functional.unfold(torch.nn.functional.pad(torch.ones(1, 1, h, w), (r, r, r, r)), win)
    attn = logits.masked_fill(ones < 0.5, float("-inf")).softmax(dim=1)
    agg = (neighbours(ifa.v(nb)) * attn.unsqueeze(1)).sum(2).reshape(n, c, h, w)
    motion = torch.einsum("ok,bkp->bop", ifa.offsets, attn).reshape(n, 2, h, w)
    return a + ifa.out(agg), motion


def test_inter_frame_attention_matches_the_unfold_formulation():
    """The shifted-view implementation computes exactly the windowed attention, gradients included."""
    torch.manual_seed(1)
    ifa = InterFrameAttention(16, 8, 5, motion_prior=1.5)
    a = torch.randn(2, 16, 9, 13, requires_grad=True)
    b = torch.randn(2, 16, 9, 13)
    desc_a = torch.nn.functional.normalize(torch.randn(2, 12, 9, 13), dim=1)
    desc_b = torch.nn.functional.normalize(torch.randn(2, 12, 9, 13), dim=1)
    got = ifa(a, b, desc_a, desc_b)
    want = _ifa_reference(ifa, a, b, desc_a, desc_b)
    for g, w_ in zip(got, want):
        torch.testing.assert_close(g, w_, rtol=1e-5, atol=1e-5)
    grad_got = torch.autograd.grad(got[0].sum() + got[1].square().sum(), a)[0]
    grad_want = torch.autograd.grad(want[0].sum() + want[1].square().sum(), a)[0]
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-4, atol=1e-5)


def test_backward_warp_translation():
    img = torch.rand(1, 3, 16, 16)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = 1.0
    out = backward_warp(img, flow)
    torch.testing.assert_close(out[..., :-1], img[..., 1:])


def test_fresh_model_follows_a_pan():
    """The descriptor-matching term makes the untrained motion follow a pure translation."""
    torch.manual_seed(0)
    model = build_model("small").eval()
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 192, 256), 3, stride=2, padding=1)[..., :96, :128]
    base = torch.nn.functional.interpolate(base, size=(96, 128), mode="bilinear", align_corners=False)
    shifted = torch.roll(base, shifts=(0, 16), dims=(2, 3))  # content moves +16 px in x
    with torch.no_grad():
        fa, fb = model.encode(base), model.encode(shifted)
        _, motion = model.ifa(fa[2], fb[2], fa[3], fb[3])
    core = motion[0, :, 2:-2, 3:-3]  # away from the wrap-around
    assert abs(core[0].mean().item() - 2.0) < 0.5  # 16 px = 2 cells of the 1/8 grid
    assert abs(core[1].mean().item()) < 0.3


def _real_frame(h: int, w: int) -> torch.Tensor:
    from conftest import reds_rgb

    return torch.from_numpy(reds_rgb(5)[:h, :w].copy()).permute(2, 0, 1).float().div(255)[None]


def test_fresh_model_sees_no_motion_in_a_static_real_frame():
    """The small-motion prior keeps flat and repetitive real texture from producing spurious motion."""
    frame = _real_frame(176, 320)
    torch.manual_seed(0)
    model = build_model("small").eval()
    with torch.no_grad():
        f = model.encode(frame)
        _, motion = model.ifa(f[2], f[2], f[3], f[3])
    assert motion.norm(dim=1).mean().item() < 0.05  # in 1/8-scale cells


def test_local_correlation_matches_direct_products():
    from vidrestore.model.network import local_correlation

    torch.manual_seed(0)
    a, b = torch.randn(2, 5, 6, 7), torch.randn(2, 5, 6, 7)
    corr = local_correlation(a, b)
    assert corr.shape == (2, 9, 6, 7)
    # offset (dy, dx) = (+1, -1) is channel (1 + 1) * 3 + (-1 + 1) = 6; check an interior pixel
    y, x = 3, 4
    assert torch.allclose(corr[:, 6, y, x], (a[:, :, y, x] * b[:, :, y + 1, x - 1]).mean(dim=1), atol=1e-6)
    assert torch.allclose(corr[:, 4], (a * b).mean(dim=1), atol=1e-6)  # zero offset


@pytest.mark.parametrize("stage", ["fine_flow", "half_flow"])
def test_flow_stages_are_optional_and_train(tiny, stage):
    """fine_flow=0 / half_flow=0 builds no 1/4- / 1/2-scale stage, and the model still runs; with it,
    its zero-initialised output gets gradients."""
    from dataclasses import replace

    from vidrestore.model.network import CONFIGS, VidRestoreNet

    without = VidRestoreNet(replace(CONFIGS["tiny"], **{stage: 0}))
    assert getattr(without, stage) is None
    assert getattr(tiny, stage) is not None
    frames = torch.rand(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert without(frames, torch.tensor([0.3]))[1].shape == (1, 1, 3, 32, 32)
    _, inter = tiny(frames, torch.tensor([0.3]))
    inter.mean().backward()
    delta = getattr(tiny, stage).delta
    assert delta.weight.grad is not None and delta.weight.grad.abs().sum() > 0


def test_coarse_matching_lets_the_attention_follow_a_large_shift():
    """A 40 px shift is beyond the 1/8 attention's window (+-3 cells = 24 px) on its own; centred on the
    coarse level's estimate, the same untrained attention finds it."""
    from vidrestore.model.network import CONFIGS, InferenceOptions, VidRestoreNet

    base = _real_frame(176, 320)
    shifted = torch.roll(base, shifts=(16, 40), dims=(2, 3))  # content moves +40 px in x, +16 in y
    torch.manual_seed(0)
    model = VidRestoreNet(CONFIGS["small"], InferenceOptions(coarse_levels=1)).eval()
    with torch.no_grad():
        feats = [model.encode(base), model.encode(shifted)]
        _, plain = model.ifa(feats[0][2], feats[1][2], feats[0][3], feats[1][3])
        init = coarse_motion(list(feats[0][4:]), list(feats[1][4:]), model.ifa.offsets, 20.0, 0.5,
                             tuple(feats[0][2].shape[-2:]), 0.1, 2)
        _, centred = model.ifa(feats[0][2], feats[1][2], feats[0][3], feats[1][3], init)
    core = (slice(None), slice(None), slice(4, -2), slice(7, -3))  # away from the wrap-around
    want = torch.tensor([5.0, 2.0]).view(1, 2, 1, 1)  # in 1/8-grid cells
    ok_plain = ((plain[core] - want).norm(dim=1) < 1).float().mean()
    ok_centred = ((centred[core] - want).norm(dim=1) < 1).float().mean()
    assert ok_plain < 0.05  # measured 0.0
    assert ok_centred > 0.5  # measured 0.57, untrained; the rest are flat sky and wrap-around edges


def test_coarse_matching_sees_no_motion_between_identical_frames():
    """The confidence gate keeps the coarse levels exactly still where nothing moves, flat areas included."""
    frame = _real_frame(176, 320)
    descs = coarse_descriptors(frame, 2)
    offsets = InterFrameAttention(8, 8, 7).offsets
    init = coarse_motion(descs, descs, offsets, 20.0, 0.5, (22, 40), 0.1, 2)
    assert init.shape == (1, 2, 22, 40)
    assert torch.equal(init, torch.zeros_like(init))


def test_coarse_levels_work_on_sizes_that_are_not_multiples_of_16():
    """1/8-grid sizes may be odd: the coarse grids round up, and the motion comes back on the 1/8 grid."""
    frame = torch.rand(1, 3, 40, 56)  # 1/8 grid 5 x 7
    descs = coarse_descriptors(frame, 2)
    assert [tuple(d.shape[-2:]) for d in descs] == [(3, 4), (2, 2)]
    offsets = InterFrameAttention(8, 8, 5).offsets
    motion = coarse_motion(descs, coarse_descriptors(frame.roll(3, dims=3), 2), offsets, 20.0, 0.5, (5, 7), 0.1, 2)
    assert motion.shape == (1, 2, 5, 7) and torch.isfinite(motion).all()


def test_inter_frame_attention_with_a_zero_init_is_the_plain_attention():
    torch.manual_seed(2)
    ifa = InterFrameAttention(16, 8, 5, motion_prior=1.5)
    a, b = torch.randn(1, 16, 9, 13), torch.randn(1, 16, 9, 13)
    desc_a = torch.nn.functional.normalize(torch.randn(1, 12, 9, 13), dim=1)
    desc_b = torch.nn.functional.normalize(torch.randn(1, 12, 9, 13), dim=1)
    plain = ifa(a, b, desc_a, desc_b)
    zero = ifa(a, b, desc_a, desc_b, torch.zeros(1, 2, 9, 13))
    for p, z in zip(plain, zero):
        torch.testing.assert_close(p, z, rtol=1e-5, atol=1e-5)


def test_still_gate_chooses_the_still_hypothesis_only_where_it_fits():
    """The gate is near 1 only where the pair's frames agree and agree better unwarped than warped."""
    from vidrestore.model.network import STILL_SLOPE, still_gate

    d_still = torch.tensor([0.0, 0.0, 0.3, 0.02, 0.02])
    d_flow = torch.tensor([0.05, 0.0, 0.0, 0.0, 0.1])
    g = still_gate(d_still, d_flow, 0.05)
    assert g[0] > 0.99  # still background that the flows dragged along: the plain average
    assert abs(g[1] - 0.5) < 1e-6  # both hypotheses fit exactly: half way (the two agree there anyway)
    assert g[2] < 1e-10  # moving content: the frames differ, the network's frame stays
    assert g[3] < 0.02 and g[3] == pytest.approx(math.exp(-(0.02 / 0.05) ** 2) / (1 + math.exp(0.02 / STILL_SLOPE)))
    assert g[4] > 0.8  # frames agree, warps do not


def test_still_gate_is_off_at_zero_and_leaves_differing_pixels_alone(tiny):
    """static_gate=0 builds the same network without the gate; with it, pixels where the pair's frames differ
    a lot come out as without it; an even kernel is refused."""
    from vidrestore.model.network import InferenceOptions, box_difference, with_options

    torch.manual_seed(1)
    x = torch.rand(1, 4, 3, 32, 48)
    off = with_options(tiny, static_gate=0.0)
    assert off.options.static_gate == 0.0 and tiny.options.static_gate > 0  # tiny itself is left as it was
    with torch.no_grad():
        _, on_inter = tiny(x, torch.tensor([0.5]))
        _, off_inter = off(x, torch.tensor([0.5]))
    far = box_difference(x[:, 1], x[:, 2], tiny.options.static_kernel)[0, 0] > 0.25  # the gate's own measure
    assert far.sum() > 100
    torch.testing.assert_close(on_inter[0, 0][:, far], off_inter[0, 0][:, far], atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        InferenceOptions(static_kernel=4)



def test_refine_sharp_false_skips_the_refiner_only_for_sharp_inputs(tiny):
    """With ``refine_sharp`` False, ``restore(sharp=True)`` gives the gated warped blend without the refiner's
    residual (the refiner is not called); blurred inputs (``sharp=False``) still get it, and with the default
    (True) ``sharp`` changes nothing."""
    from vidrestore.model.network import with_options

    torch.manual_seed(2)
    # a refiner that adds something, so that skipping it is visible
    model = build_model("tiny").eval()
    torch.nn.init.normal_(model.refiner.out[0].weight, std=0.05)
    skip = with_options(model, refine_sharp=False)
    assert not skip.training and skip.options.refine_sharp is False
    x = torch.rand(1, 4, 3, 32, 48)
    frames = [x[:, i] for i in range(4)]
    times = torch.tensor([0.3, 0.5])
    calls = []
    hook = skip.refiner.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        feats = [model.encode(f) for f in frames]
        _, full = model.restore(frames, feats, times, with_key=False, sharp=True)
        _, full_blurred = model.restore(frames, feats, times, with_key=False)
        _, skipped = skip.restore(frames, feats, times, with_key=False, sharp=True)
        assert not calls
        _, refined = skip.restore(frames, feats, times, with_key=False, sharp=False)
        assert calls
    hook.remove()
    torch.testing.assert_close(full, full_blurred)
    torch.testing.assert_close(refined, full)
    assert (skipped - full).abs().max() > 1e-3
    # the time-reversal symmetry holds without the refiner too
    with torch.no_grad():
        _, mirrored = skip.restore([frames[3], frames[2], frames[1], frames[0]], feats[::-1], 1 - times,
                                   with_key=False, sharp=True)
    torch.testing.assert_close(mirrored, skipped, atol=1e-4, rtol=0)
