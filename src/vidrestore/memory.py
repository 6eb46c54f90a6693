"""Fitting one forward pass to device memory: the budget, a probe of the model's memory per pixel, the batch
and tile side that fit, and what to shrink after an out-of-memory error.

The network's memory is linear in H*W (every part of it is), so one probe forward on a small crop, scaled by
pixel count, predicts a whole frame's. Only CUDA memory is planned; other devices run unplanned.
"""

from __future__ import annotations

import math

import torch

from vidrestore.errors import ProcessingError
from vidrestore.model.prior_net import PriorFlows
from vidrestore.runtime import Runtime

OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)} - {None}
)  # type: ignore[arg-type]
MIN_TILE = 64
DEFAULT_BUDGET_BYTES = 8 * 2**30


def budget_bytes(device: torch.device, gpu_memory_gb: float | None) -> float | None:
    """CUDA memory one forward may use: ``gpu_memory_gb`` (0: no limit), else min(8 GiB, half the free memory);
    None off CUDA."""
    if device.type != "cuda":
        return None
    if gpu_memory_gb is not None:
        return gpu_memory_gb * 2**30 if gpu_memory_gb > 0 else None
    free, _total = torch.cuda.mem_get_info(device)
    return float(min(DEFAULT_BUDGET_BYTES, free / 2))


def probe_bytes_per_pixel(rt: Runtime, padded: tuple[int, int], multiple: int, factor: int, mode: str) -> float:
    """Peak CUDA memory of encoding 4 frames and one window's restore on a crop of at most 256x256, per pixel."""
    hp, wp = padded
    side = max(multiple, min(256, hp, wp) // multiple * multiple)
    sh, sw = min(side, hp), min(side, wp)
    device, model = rt.device, rt.model
    n_t = factor - 1
    times = torch.arange(1, n_t + 1, device=device, dtype=torch.float32) / factor
    x = torch.rand((1, 3, sh, sw), device=device).to(next(model.parameters()).dtype)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.inference_mode(), rt.autocast():
        frames = [x + 0.01 * i for i in range(4)]
        feats = [model.encode(f) for f in frames]
        model.restore(frames, feats, times, PriorFlows.zero(sh, sw, device), with_key=mode != "interp",
                      sharp=mode == "interp")
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    return peak / float(sh * sw)


def plan_memory(height: int, width: int, bytes_per_pixel: float, budget_bytes: float, batch: int,
                multiple: int, min_tile: int = MIN_TILE) -> tuple[int, int | None]:
    """(items per forward, tile side or None) so that one forward stays within ``budget_bytes``.

    A forward over ``n`` items of ``a`` pixels uses about ``n * a * bytes_per_pixel``. Whole frames
    are kept if one fits (with the batch lowered as needed); otherwise the largest square tile side
    (a multiple of ``multiple``, at least ``min_tile``) that fits, one tile per forward if need be.
    """
    if batch < 1 or bytes_per_pixel <= 0 or budget_bytes <= 0:
        raise ValueError("plan_memory: batch, bytes per pixel and budget must be positive")
    whole = bytes_per_pixel * height * width
    if whole <= budget_bytes:
        return max(1, min(batch, int(budget_bytes // whole))), None
    side = int(math.sqrt(budget_bytes / bytes_per_pixel)) // multiple * multiple
    side = max(side, -(-min_tile // multiple) * multiple)
    per_tile = bytes_per_pixel * min(side, height) * min(side, width)
    return max(1, min(batch, int(budget_bytes // per_tile))), side


def shrink_after_oom(device: torch.device, err: BaseException, chunk: int, tile: int | None,
                     padded: tuple[int, int], multiple: int) -> tuple[int, int | None]:
    """(items per forward, tile side) to retry with after an out-of-memory error: half the batch, else half
    the tile side; a ProcessingError when neither can shrink."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if chunk > 1:
        return chunk // 2, tile
    current = tile or max(padded)
    smaller = (current // 2) // multiple * multiple
    if smaller >= max(MIN_TILE, 2 * multiple):
        return chunk, smaller
    raise ProcessingError(
        f"out of memory on {device} even with batch 1 and {current}px tiles; "
        "try --precision fp16/bf16 or --device cpu") from err
