"""Padding to the model's multiple, and tiles: split a padded frame into overlapping tiles, paste the cores
of the model's outputs back on the host (Real-ESRGAN's scheme: padded context in, core out).

No model and no I/O. Outputs are quantized to the frames' own integer type tile by tile, straight into
host arrays of the output frames, so the device holds only one forward's tiles at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidrestore.frames import quantize

# ------------------------------------------------------------------------------------------------
# padding
# ------------------------------------------------------------------------------------------------


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``x`` [B, C, H, W] or [C, H, W] on the bottom and right up to multiples of ``multiple``.

    Reflect padding where the frame is large enough, repeated reflection otherwise (tiny
    frames), so that the model sees plausible content and no hard edge.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, multiple)
    if (ph, pw) == (h, w):
        return x
    squeeze = x.dim() == 3
    y = x.unsqueeze(0) if squeeze else x
    while y.shape[-2] < ph or y.shape[-1] < pw:
        ch, cw = y.shape[-2:]
        dh, dw = min(ph - ch, ch - 1), min(pw - cw, cw - 1)
        if (ph > ch and dh <= 0) or (pw > cw and dw <= 0):  # a 1-pixel side: nothing to reflect
            y = F.pad(y, (0, pw - cw, 0, ph - ch), mode="replicate")
            break
        y = F.pad(y, (0, dw, 0, dh), mode="reflect")
    return y[0] if squeeze else y


def crop_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return x[..., :height, :width]


# ------------------------------------------------------------------------------------------------
# tiles
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """A tile of a (padded) frame: ``y0:y0+h, x0:x0+w`` goes into the model, and the output's
    core ``cy0:cy1, cx0:cx1`` (frame coordinates) is pasted into the result."""

    y0: int
    x0: int
    h: int
    w: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def _axis_tiles(size: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """(start, core_start, core_end) along one axis; every tile is ``min(tile, size)`` long."""
    if size <= tile:
        return [(0, 0, size)]
    step = max(tile - overlap, 1)
    starts = list(range(0, size - tile, step)) + [size - tile]
    out = []
    for k, s in enumerate(starts):
        c0 = 0 if k == 0 else (s + starts[k - 1] + tile) // 2
        c1 = size if k == len(starts) - 1 else (starts[k + 1] + s + tile) // 2
        out.append((s, c0, c1))
    return out


def tile_grid(height: int, width: int, tile: int | None, overlap: int, multiple: int) -> list[Tile]:
    """Overlapping tiles covering a ``height`` x ``width`` frame (both multiples of ``multiple``).

    Tile sides and overlaps are rounded up to multiples of ``multiple`` so every tile can be
    given to the model as is; all tiles have the same size, so they batch together. Each output
    pixel comes from the tile whose centre is nearest, at least ``overlap // 2`` from its edge
    (except at the frame's own border).
    """
    if tile is None or (height <= tile and width <= tile):
        return [Tile(0, 0, height, width, 0, height, 0, width)]
    t = -(-tile // multiple) * multiple
    o = min(-(-overlap // multiple) * multiple, max(t - multiple, 0))
    ys = _axis_tiles(height, t, o)
    xs = _axis_tiles(width, t, o)
    th, tw = min(t, height), min(t, width)
    return [Tile(y, x, th, tw, cy0, cy1, cx0, cx1) for (y, cy0, cy1) in ys for (x, cx0, cx1) in xs]


class Canvas:
    """The output frames of one forward group: ``count`` HxWx3 host arrays of ``dtype`` (uint8 or uint16),
    filled tile by tile with the cores of the model's outputs."""

    def __init__(self, count: int, height: int, width: int, dtype: np.dtype) -> None:
        self.height, self.width, self.dtype = height, width, np.dtype(dtype)
        self.frames = np.empty((count, height, width, 3), dtype=self.dtype)

    def paste(self, index: int, out: torch.Tensor, tile: Tile) -> None:
        """Paste the core of ``out`` [N, 3, th, tw] (float in [0, 1], unclamped; the outputs of ``tile``) into
        frames ``index .. index + N - 1``."""
        y1, x1 = min(tile.cy1, self.height), min(tile.cx1, self.width)
        if y1 <= tile.cy0 or x1 <= tile.cx0:
            return  # a tile wholly inside the padding
        core = out[:, :, tile.cy0 - tile.y0:y1 - tile.y0, tile.cx0 - tile.x0:x1 - tile.x0]
        for i in range(out.shape[0]):  # frame by frame: the float temporaries of one frame at a time
            self.frames[index + i, tile.cy0:y1, tile.cx0:x1] = quantize(core[i:i + 1], self.dtype)[0]

    def split(self) -> list[np.ndarray]:
        return list(self.frames)

