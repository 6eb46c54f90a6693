"""The parameter-free flow polish (a symmetric Lucas-Kanade step on the two frames warped to t)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidrestore.model.filters import box_mean
from vidrestore.model.polish import luma, polish_flows
from vidrestore.model.warp import backward_warp


def _texture(h: int = 64, w: int = 80) -> torch.Tensor:
    from conftest import reds_rgb

    frame = torch.from_numpy(reds_rgb(5)[100:100 + h, 200:200 + w].copy())
    frame = luma(frame.permute(2, 0, 1).float().div(255)[None])
    return F.avg_pool2d(frame, 3, stride=1, padding=1, count_include_pad=False)  # bilinear-friendly


def _pair(v: tuple[float, float], t: float):
    """A real texture translated by v between the pair, and the exact flows from time t."""
    img0 = _texture()
    motion = torch.tensor(v).view(1, 2, 1, 1).expand(1, 2, *img0.shape[-2:])
    img1 = backward_warp(img0, -motion)  # img1(p) = img0(p - v)
    return img0, img1, -t * motion, (1 - t) * motion


def _polish(img0, img1, f0, f1, t, iterations=2):
    tau = torch.full((1, 1, 1, 1), t)
    return polish_flows(img0, img1, f0, f1, tau, iterations, kernel=7, damping=1e-4, max_step=1.0)


CORE = (..., slice(8, -8), slice(8, -8))  # away from the clamped borders


def test_polish_recovers_a_subpixel_motion_error():
    t = 0.3
    img0, img1, true0, true1 = _pair((2.4, -1.3), t)
    err = torch.tensor([0.7, -0.5]).view(1, 2, 1, 1)  # the network's motion estimate is off by this
    f0, f1 = true0 - t * err, true1 + (1 - t) * err
    p0, p1 = _polish(img0, img1, f0, f1, t)
    before = (f1 - true1)[CORE].norm(dim=1).mean().item()
    after = (p1 - true1)[CORE].norm(dim=1).mean().item()
    assert after < 0.3 * before, (before, after)
    # the motion stays linear: side 0's flow moves by -t/(1-t) of side 1's
    torch.testing.assert_close((p0 - f0) * (1 - t), -(p1 - f1) * t, atol=1e-5, rtol=0)


def test_polish_keeps_right_flows_and_refuses_what_does_not_help():
    t = 0.6
    img0, img1, true0, true1 = _pair((1.2, 2.1), t)
    _, p1 = _polish(img0, img1, true0, true1, t)
    drift = (p1 - true1)[CORE].norm(dim=1)  # the exact answer stays (up to bilinear resampling's own bias)
    assert drift.mean().item() < 0.03 and drift.max().item() < 0.15

    torch.manual_seed(0)
    noise = torch.rand(1, 1, 64, 80)  # nothing to match: updates are refused or help
    f0, f1 = torch.randn(1, 2, 64, 80), torch.randn(1, 2, 64, 80)

    def cost(a0, a1):
        return box_mean((backward_warp(img0, a0) - backward_warp(noise, a1)).abs(), 7).mean()

    p0, p1 = _polish(img0, noise, f0, f1, t, iterations=3)
    assert cost(p0, p1) <= cost(f0, f1)


def test_polish_mirrors_under_time_reversal():
    t = 0.25
    img0, img1, true0, true1 = _pair((-1.6, 0.9), t)
    err = torch.tensor([0.5, 0.4]).view(1, 2, 1, 1)
    f0, f1 = true0 - t * err, true1 + (1 - t) * err
    p0, p1 = _polish(img0, img1, f0, f1, t)
    r1, r0 = _polish(img1, img0, f1, f0, 1 - t)  # the pair swapped, t -> 1 - t
    torch.testing.assert_close(r0, p0, atol=1e-4, rtol=0)
    torch.testing.assert_close(r1, p1, atol=1e-4, rtol=0)


def test_zero_iterations_leaves_the_flows_and_a_static_pair_stays_still():
    img0 = _texture()
    zero = torch.zeros(1, 2, 64, 80)
    f0, f1 = torch.randn(1, 2, 64, 80), torch.randn(1, 2, 64, 80)
    p0, p1 = _polish(img0, img0, f0, f1, 0.5, iterations=0)
    assert p0 is f0 and p1 is f1
    p0, p1 = _polish(img0, img0, zero, zero, 0.5)  # identical frames, no motion: nothing to fix
    assert p0.abs().max().item() == 0 and p1.abs().max().item() == 0


@pytest.mark.parametrize("kernel", [1, 3, 7, 11])
def test_box_mean_is_the_border_aware_average_pool(kernel):
    x = torch.rand(2, 3, 13, 9)
    expected = F.avg_pool2d(x, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    torch.testing.assert_close(box_mean(x, kernel), expected)


def test_box_mean_rejects_an_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        box_mean(torch.rand(1, 1, 8, 8), 4)
