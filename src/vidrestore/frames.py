"""Frames between numpy and torch: HxWx3 uint8/uint16 RGB arrays <-> [N, 3, H, W] float tensors in [0, 1].

The one place where video frames become model inputs and model outputs become video frames.
"""

from __future__ import annotations

import numpy as np
import torch


def scale_of(dtype: np.dtype) -> float:
    """The code value of full white for an integer frame type (255 or 65535)."""
    return 255.0 if np.dtype(dtype) == np.uint8 else 65535.0


def to_tensor(arr: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """An HxWx3 uint8 or uint16 RGB array -> a [1, 3, H, W] float32 tensor in [0, 1] on ``device``."""
    src = torch.from_numpy(arr if arr.dtype == np.uint8 else arr.astype(np.int32))
    t = src.to(device, non_blocking=True).permute(2, 0, 1).unsqueeze(0)
    return t.to(torch.float32).div_(scale_of(arr.dtype))


def quantize(x: torch.Tensor, dtype: np.dtype = np.uint8) -> np.ndarray:
    """[N, 3, H, W] float in [0, 1] (unclamped) -> [N, H, W, 3] host array of ``dtype`` (uint8 or uint16)."""
    x = x.float().clamp(0.0, 1.0)  # a new tensor: the steps after it work in place
    if np.dtype(dtype) == np.uint16:
        return x.mul_(65535.0).round_().to(torch.int32).permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.uint16)
    return x.mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
