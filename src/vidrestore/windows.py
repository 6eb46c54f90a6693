"""Windows of neighbouring frames, scene cuts, padding to the model's multiple, and tiles.

Pure bookkeeping and small tensor helpers: no model, no I/O. The engine uses these to decide
which four frames make up each window, where not to interpolate, how to pad a frame so the
model accepts it (and crop the result back), and how to split a large frame into overlapping
tiles whose cores are pasted back together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

# ------------------------------------------------------------------------------------------------
# scene cuts
# ------------------------------------------------------------------------------------------------

THUMB_SIZE = (64, 36)  # (width, height) of the grey thumbnail used for scene-cut scores
HIST_BINS = 32


def scene_thumbnail(frame: np.ndarray) -> np.ndarray:
    """A small grey float32 image in [0, 1] of an HxWx3 RGB uint8/uint16 frame."""
    import cv2

    scale = 255.0 if frame.dtype == np.uint8 else float(np.iinfo(frame.dtype).max) if frame.dtype.kind == "u" else 1.0
    img = frame.astype(np.float32) / scale if frame.dtype != np.float32 else frame
    grey = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA)


def scene_score(a: np.ndarray, b: np.ndarray) -> float:
    """Scene-change score in [0, 1] between two thumbnails from :func:`scene_thumbnail`.

    The geometric mean of the mean absolute difference (high for motion and cuts) and the
    histogram distance (high for cuts, low for motion), so motion alone rarely scores high.
    """
    mad = float(np.abs(a - b).mean())
    ha = np.histogram(a, bins=HIST_BINS, range=(0.0, 1.0))[0].astype(np.float64) / a.size
    hb = np.histogram(b, bins=HIST_BINS, range=(0.0, 1.0))[0].astype(np.float64) / b.size
    hist = 0.5 * float(np.abs(ha - hb).sum())
    return float(np.sqrt(max(mad, 0.0) * max(hist, 0.0)))


class SceneDetector:
    """Feed frames in order; each call says whether there is a cut *before* that frame."""

    def __init__(self, threshold: float | None) -> None:
        self.threshold = threshold
        self._prev: np.ndarray | None = None
        self.last_score: float = 0.0

    def __call__(self, frame: np.ndarray) -> bool:
        if self.threshold is None:
            return False
        thumb = scene_thumbnail(frame)
        prev, self._prev = self._prev, thumb
        if prev is None:
            self.last_score = 0.0
            return False
        self.last_score = scene_score(prev, thumb)
        return self.last_score > self.threshold


# ------------------------------------------------------------------------------------------------
# windows
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The four frames the model sees for centre frame ``center``.

    ``frames`` are input indices for F(i-1), F(i), F(i+1), F(i+2) after replication at video
    ends and scene cuts. ``interpolate`` is False where there is no next frame in the same scene:
    then no in-between frames are made and the centre frame is held instead.
    """

    center: int
    frames: tuple[int, int, int, int]
    interpolate: bool


def plan_window(center: int, available: int, cut_before: Callable[[int], bool]) -> Window:
    """Neighbours of ``center`` among the ``available`` frames known so far (indices below it).

    Call it once frame ``center + 2`` is known or the video has ended. ``cut_before(j)`` is True
    when a scene cut lies between frames j-1 and j. Frames across a cut or beyond the ends are
    never used: F(i-1) := F(i) and F(i+2) := F(i+1), and without an F(i+1) in the same scene the
    window is (F(i-1), F(i), F(i), F(i)) and nothing is interpolated after F(i).
    """

    def usable(j: int) -> bool:
        return 0 <= j < available

    prev = center - 1 if usable(center - 1) and not cut_before(center) else center
    nxt = center + 1 if usable(center + 1) and not cut_before(center + 1) else None
    if nxt is None:
        return Window(center, (prev, center, center, center), interpolate=False)
    nxt2 = center + 2 if usable(center + 2) and not cut_before(center + 2) else nxt
    return Window(center, (prev, center, nxt, nxt2), interpolate=True)


def lookahead_needed(center: int) -> int:
    """The highest input index that must be known (or the end reached) to plan ``center``."""
    return center + 2


# ------------------------------------------------------------------------------------------------
# padding
# ------------------------------------------------------------------------------------------------


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_to_multiple(x: "torch.Tensor", multiple: int) -> "torch.Tensor":
    """Pad ``x`` [B, C, H, W] or [C, H, W] on the bottom and right up to multiples of ``multiple``.

    Reflect padding where the frame is large enough, repeated reflection otherwise (tiny
    frames), so that the model sees plausible content and no hard edge.
    """
    import torch.nn.functional as F

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


def crop_to(x: "torch.Tensor", height: int, width: int) -> "torch.Tensor":
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
