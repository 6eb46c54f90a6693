"""Parameter-free sub-pixel polish of the in-between frame's two flows (symmetric Lucas-Kanade steps).

The network's flows come from its coarse grids. Where the motion is small and the texture fine, a
fraction of a pixel off is already visible, and a learned stage at that precision costs much time. This
is the classical answer: per pixel, Gauss-Newton steps on the difference of the two frames warped to t,
over a small box, with the motion between the pair as the unknown, so both flows move together (side 0's
by -t*delta, side 1's by (1-t)*delta) and swapping the pair with t -> 1-t mirrors the result. An update is
kept only at pixels where it makes the two warped frames agree better over the box, so at occlusions and
in flat areas the network's flows stay.
"""

from __future__ import annotations

import torch

from vidrestore.model.filters import box_mean, gradients
from vidrestore.model.warp import backward_warp

# Rec. 601 luma weights: the polish matches brightness only, one channel instead of three
LUMA = (0.299, 0.587, 0.114)


def luma(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB -> [B, 1, H, W]."""
    r, g, b = image.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def polish_flows(
    gray0: torch.Tensor,
    gray1: torch.Tensor,
    flow0: torch.Tensor,
    flow1: torch.Tensor,
    tau: torch.Tensor,
    iterations: int,
    kernel: int,
    damping: float,
    max_step: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Polish the flows from time t to each frame of the pair; returns (flow0, flow1).

    gray0, gray1 [B, 1, H, W] the pair's luma; flow0, flow1 [B, 2, H, W] in pixels (backward: the frame at t
    samples the first frame at p + flow0(p)); tau [B, 1, 1, 1] the time t. ``damping`` is added to the 2x2
    normal matrix (box means of squared gradients, images in [0, 1]); ``max_step`` caps each step's length in
    pixels of motion between the pair. Works in float32 whatever the inputs' dtype.
    """
    if iterations <= 0:
        return flow0, flow1
    dtype = flow0.dtype
    tau = tau.float()
    gray0, gray1 = gray0.float(), gray1.float()
    f0, f1 = flow0.float(), flow1.float()
    w0, w1 = backward_warp(gray0, f0), backward_warp(gray1, f1)
    cost = box_mean((w1 - w0).abs(), kernel)
    for _ in range(iterations):
        # d(w1 - w0)/d(delta) = (1 - t) grad w1 + t grad w0 = grad of the time-weighted mix (linear)
        jx, jy = gradients((1.0 - tau) * w1 + tau * w0)
        r = w1 - w0
        sums = box_mean(torch.cat((jx * jx, jx * jy, jy * jy, jx * r, jy * r), dim=1), kernel)
        axx, axy, ayy, bx, by = (sums[:, i : i + 1] for i in range(5))
        axx, ayy = axx + damping, ayy + damping
        det = axx * ayy - axy * axy
        dx = (axy * by - ayy * bx) / det
        dy = (axy * bx - axx * by) / det
        length = torch.sqrt(dx * dx + dy * dy)
        shrink = torch.clamp(max_step / length.clamp_min(1e-12), max=1.0)
        delta = torch.cat((dx, dy), dim=1) * shrink
        n0, n1 = f0 - tau * delta, f1 + (1.0 - tau) * delta
        v0, v1 = backward_warp(gray0, n0), backward_warp(gray1, n1)
        new_cost = box_mean((v1 - v0).abs(), kernel)
        keep = new_cost < cost
        f0, f1 = torch.where(keep, n0, f0), torch.where(keep, n1, f1)
        w0, w1 = torch.where(keep, v0, w0), torch.where(keep, v1, w1)
        cost = torch.where(keep, new_cost, cost)
    return f0.to(dtype), f1.to(dtype)
