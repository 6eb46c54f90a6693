"""Small building blocks of the network."""

from __future__ import annotations

import torch
import torch.nn as nn


def conv(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Conv2d:
    """A k x k convolution that keeps the size (at stride 1)."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


def zero_init(module: nn.Conv2d) -> nn.Conv2d:
    """``module`` with zero weights and bias: a residual or correction that starts at nothing."""
    nn.init.zeros_(module.weight)
    nn.init.zeros_(module.bias)
    return module


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(c, c), act(), conv(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def check_multiple(frame: torch.Tensor, multiple: int) -> None:
    """A network's input must be padded to a multiple of its ``multiple`` (the caller pads, not the network)."""
    if frame.shape[-1] % multiple or frame.shape[-2] % multiple:
        raise ValueError(f"frame size {tuple(frame.shape[-2:])} is not a multiple of {multiple}; pad it first")


def window_features(encode, frames: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Each frame of windows ``frames`` [B, 4, 3, H, W] encoded by ``encode`` (one call for all B*4 frames):
    a list of 4 feature tuples, each level [B, ...]."""
    b, n = frames.shape[:2]
    flat = encode(frames.flatten(0, 1))
    return [tuple(part.unflatten(0, (b, n))[:, i] for part in flat) for i in range(n)]
