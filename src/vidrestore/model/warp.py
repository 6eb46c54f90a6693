"""Backward warping and flow resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GRIDS: dict[tuple, torch.Tensor] = {}


def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel coordinates [1, 2, H, W] (x, y), cached per size/device/dtype."""
    key = (h, w, device, dtype)
    grid = _GRIDS.get(key)
    if grid is None:
        ys = torch.arange(h, device=device, dtype=dtype)
        xs = torch.arange(w, device=device, dtype=dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((gx, gy), dim=0).unsqueeze(0)
        if len(_GRIDS) > 32:
            _GRIDS.clear()
        _GRIDS[key] = grid
    return grid


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``p + flow(p)`` for every output pixel p.

    image: [B, C, H, W]; flow: [B, 2, H, W] in pixels (x, y). Borders are clamped.
    """
    b, _, h, w = image.shape
    grid = _base_grid(h, w, flow.device, flow.dtype) + flow
    gx = grid[:, 0] * (2.0 / max(w - 1, 1)) - 1.0
    gy = grid[:, 1] * (2.0 / max(h - 1, 1)) - 1.0
    norm = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image, norm.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def resize_map(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a map of few channels (flows, blend weights) to ``size`` (H, W), in the default
    layout: for 1-3 channels PyTorch's channels-last bilinear kernel is the slower one on the CPU (a
    convolution's output is channels-last when the network is)."""
    return F.interpolate(x.contiguous(), size=tuple(size), mode="bilinear", align_corners=False)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a pixel-unit flow field to ``size`` (H, W), scaling the vectors with it."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    out = resize_map(flow, size)
    sx = size[1] / w
    sy = size[0] / h
    return torch.cat((out[:, :1] * sx, out[:, 1:2] * sy), dim=1)
