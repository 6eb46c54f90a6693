"""Motion blur as cameras make it, on real frames (training data for the restoration path).

- :func:`temporal_blur`: a sharp ordinary-rate clip upsampled to many sub-frames with the classical flow
  between its frames and averaged over an exposure, as the REDS dataset was made. Blur follows the
  scene's own motion: objects and camera, with occlusions.
- :func:`shake_kernels` and :func:`apply_kernels`: handheld camera-shake trajectories (a random walk with
  inertia, as in Boracchi and Foi's model) drawn into blur kernels, applied to a frame.

Images are float tensors in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidrestore.flow import backward_warp, dis_flow


def temporal_blur(frames: Sequence[np.ndarray], centre: int, exposure: float, steps: int = 8,
                  flows: dict[tuple[int, int], np.ndarray] | None = None) -> np.ndarray:
    """Frame ``centre`` of ``frames`` (HxWx3 uint8, consecutive) blurred over ``exposure`` frame intervals
    centred on it: the mean of sub-frames at ``steps`` per interval, each made from its two neighbouring
    real frames by DIS flow both ways (warp and blend, as :func:`vidrestore.flow.dis_interpolate`).
    ``flows`` caches the flows between frame indices. Returns HxWx3 float32 in [0, 255]; exposure 0 gives
    the frame itself. The exposure is clamped to the frames available."""
    n = len(frames)
    half = min(exposure / 2.0, centre, n - 1 - centre)
    if half <= 0:
        return frames[centre].astype(np.float32)
    cache = flows if flows is not None else {}

    def flow(a: int, b: int) -> np.ndarray:
        if (a, b) not in cache:
            cache[(a, b)] = dis_flow(frames[a], frames[b])
        return cache[(a, b)]

    count = max(2, int(math.ceil(2 * half * steps)) + 1)
    acc = np.zeros(frames[centre].shape, np.float32)
    for s in np.linspace(centre - half, centre + half, count):
        k = min(int(math.floor(s)), n - 2)
        t = float(s - k)
        if t < 1e-6:
            acc += frames[k]
        elif t > 1 - 1e-6:
            acc += frames[k + 1]
        else:
            from_a = backward_warp(frames[k], t * flow(k + 1, k))
            from_b = backward_warp(frames[k + 1], (1.0 - t) * flow(k, k + 1))
            acc += (1.0 - t) * from_a + t * from_b
    return acc / count


def shake_kernels(lengths: torch.Tensor, size: int, generator: torch.Generator, points: int = 64,
                  straight: torch.Tensor | None = None) -> torch.Tensor:
    """Camera-shake blur kernels [B, size, size] (each sums to 1) whose trajectories are about
    ``lengths`` [B] pixels long (0: a delta, no blur). A trajectory is a random walk with inertia and a
    pull back to its start (a hand), rescaled to its length and centred; its points are splatted
    bilinearly. ``straight`` [B] bool: those trajectories are straight lines (a pan)."""
    b = lengths.shape[0]
    walk = torch.ones(b, 1) if straight is None else (~straight).float().view(b, 1)
    vel = torch.zeros(b, 2)
    pos = torch.zeros(b, points, 2)
    direction = torch.rand(b, generator=generator) * 2 * math.pi
    vel[:, 0], vel[:, 1] = torch.cos(direction), torch.sin(direction)
    p = torch.zeros(b, 2)
    for i in range(1, points):
        jitter = torch.randn(b, 2, generator=generator) * 0.35
        vel = 0.9 * vel + walk * (jitter - 0.02 * p)
        vel = vel / vel.norm(dim=1, keepdim=True).clamp_min(1e-6)
        p = p + vel
        pos[:, i] = p
    seg = (pos[:, 1:] - pos[:, :-1]).norm(dim=2).sum(dim=1).clamp_min(1e-6)
    pos = (pos - pos.mean(dim=1, keepdim=True)) * (lengths / seg).view(b, 1, 1)
    c = (size - 1) / 2.0
    xy = pos + c
    kernels = torch.zeros(b, size * size)
    x0, y0 = xy[..., 0].floor(), xy[..., 1].floor()
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - (xy[..., 0] - xi).abs()) * (1 - (xy[..., 1] - yi).abs())
            ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
            idx = (yi.clamp(0, size - 1) * size + xi.clamp(0, size - 1)).long()
            kernels.scatter_add_(1, idx, torch.where(ok, wgt, torch.zeros_like(wgt)))
    kernels = kernels.view(b, size, size)
    delta = lengths <= 0.5
    if delta.any():
        kernels[delta] = 0
        kernels[delta, size // 2, size // 2] = 1
    return kernels / kernels.sum(dim=(1, 2), keepdim=True).clamp_min(1e-8)


def apply_kernels(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each image [B, C, H, W] convolved with its kernel [B, k, k] (replicated borders)."""
    b, c, h, w = images.shape
    k = kernels.shape[-1]
    x = F.pad(images.reshape(1, b * c, h, w), (k // 2,) * 4, mode="replicate")
    weight = kernels.flip(-1, -2).repeat_interleave(c, dim=0).unsqueeze(1).to(images.dtype)
    return F.conv2d(x, weight, groups=b * c).reshape(b, c, h, w)


def motion_length(frames: Sequence[np.ndarray], centre: int, percentile: float = 90.0) -> float:
    """How far the moving parts of frame ``centre`` travel per frame interval: the ``percentile`` of the
    DIS flow magnitude to its neighbours (px per interval, averaged over the two sides)."""
    sides = [i for i in (centre - 1, centre + 1) if 0 <= i < len(frames)]
    mags = [float(np.percentile(np.linalg.norm(dis_flow(frames[centre], frames[i]), axis=2), percentile))
            for i in sides]
    return sum(mags) / len(mags)


def blur_to_length(frames: Sequence[np.ndarray], centre: int, length: float) -> tuple[np.ndarray, float]:
    """Frame ``centre`` blurred as in :func:`temporal_blur` over the exposure that makes its moving parts
    smear about ``length`` px (``motion_length`` times the exposure), at most the frames given. Returns
    (HxWx3 uint8, the length reached)."""
    motion = max(motion_length(frames, centre), 1e-3)
    reach = 2.0 * min(centre, len(frames) - 1 - centre)
    exposure = min(length / motion, reach)
    out = temporal_blur(frames, centre, exposure)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), exposure * motion
