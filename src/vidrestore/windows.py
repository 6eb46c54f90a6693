"""Windows of neighbouring frames and scene cuts.

Pure bookkeeping: no model, no I/O. The engine uses these to decide which four frames make up each
window and where not to interpolate (video ends, scene cuts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

# ------------------------------------------------------------------------------------------------
# scene cuts
# ------------------------------------------------------------------------------------------------

THUMB_SIZE = (64, 36)  # (width, height) of the grey thumbnail used for scene-cut scores
HIST_BINS = 32


def scene_thumbnail(frame: np.ndarray) -> np.ndarray:
    """A small grey float32 image in [0, 1] of an HxWx3 RGB uint8/uint16 frame."""
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


# how far a window reaches from its centre i: F(i-1) .. F(i+2). A chunk of a longer job decodes this many
# frames beyond its ends (its halo) so that its windows, scene cuts and flows are those of the whole video
HALO_BEFORE = 1
HALO_AFTER = 2


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
