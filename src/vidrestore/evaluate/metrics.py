"""Full-reference image quality: PSNR and SSIM on RGB frames.

Definitions (the README quotes them):

* Frames are HxWx3 RGB. ``uint8`` frames are divided by 255; float frames are taken as already in
  [0, 1]. Both frames of a pair must have the same shape.
* PSNR = 10 * log10(1 / MSE), where MSE is the mean of the squared difference over all pixels and
  all 3 channels of the frame. Identical frames (MSE = 0) score ``PSNR_CAP_DB`` (100 dB) rather than
  infinity, so that means and JSON stay finite; no real error on 8-bit frames comes near it.
* SSIM (Wang et al. 2004) with an 11x11 Gaussian window (sigma 1.5, normalised to sum 1), K1 = 0.01,
  K2 = 0.03, dynamic range L = 1, computed on each channel separately over the "valid" region (the
  window entirely inside the frame, i.e. 5 pixels trimmed at each border), averaged over that region
  and then over the 3 channels.
* Scores are per frame; a clip's score is the mean over its frames, and a report's mean is the mean
  over clips (each clip weighs the same).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidrestore.errors import UsageError

PSNR_CAP_DB = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def to_unit_float(frame: np.ndarray) -> np.ndarray:
    """An HxWxC frame as float64 in [0, 1] (uint8 is divided by 255, floats are kept as they are)."""
    arr = np.asarray(frame)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64, copy=False)
    raise UsageError(f"unsupported frame dtype {arr.dtype} (expected uint8, uint16 or float)")


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise UsageError(f"frames differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3:
        raise UsageError(f"expected HxWxC frames, got shape {a.shape}")


def psnr(a: np.ndarray, b: np.ndarray, cap_db: float = PSNR_CAP_DB) -> float:
    """PSNR in dB between two frames with values in [0, 1] (uint8 frames are scaled by 1/255)."""
    x, y = to_unit_float(a), to_unit_float(b)
    _check_pair(x, y)
    mse = float(np.mean((x - y) ** 2))
    if mse <= 0.0:
        return cap_db
    return min(cap_db, 10.0 * math.log10(1.0 / mse))


def _gaussian_taps(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The 1-D Gaussian whose outer product with itself is the (normalised) 2-D SSIM window."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Weighted local means of ``img`` (HxW or HxWxC) under the separable window, only where the
    window lies entirely inside the frame."""
    import cv2

    full = cv2.sepFilter2D(img, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REFLECT)
    p = len(taps) // 2
    return full[p : img.shape[0] - p, p : img.shape[1] - p]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over the 3 channels (Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, L 1)."""
    x, y = to_unit_float(a), to_unit_float(b)
    _check_pair(x, y)
    if min(x.shape[0], x.shape[1]) < SSIM_WINDOW:
        raise UsageError(f"frames of {x.shape[1]}x{x.shape[0]} are too small for SSIM (needs at least 11x11)")
    if x.shape[2] > 4:  # OpenCV filters at most 4 channels at once
        return float(np.mean([ssim(x[:, :, c : c + 1], y[:, :, c : c + 1]) for c in range(x.shape[2])]))
    taps = _gaussian_taps()
    c1 = (SSIM_K1 * 1.0) ** 2
    c2 = (SSIM_K2 * 1.0) ** 2
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    mu_x = _filter_valid(x, taps)
    mu_y = _filter_valid(y, taps)
    sxx = _filter_valid(x * x, taps) - mu_x * mu_x
    syy = _filter_valid(y * y, taps) - mu_y * mu_y
    sxy = _filter_valid(x * y, taps) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    ssim_map = (num / den).reshape(num.shape[0], num.shape[1], -1)
    # the mean over the valid region of each channel, then over the channels
    return float(np.mean(ssim_map.mean(axis=(0, 1))))


@dataclass(frozen=True)
class FrameScore:
    """The scores of one output frame against its ground truth."""

    psnr: float
    ssim: float
    is_key: bool


def score_frame(pred: np.ndarray, truth: np.ndarray, is_key: bool) -> FrameScore:
    return FrameScore(psnr=psnr(pred, truth), ssim=ssim(pred, truth), is_key=is_key)


@dataclass(frozen=True)
class Summary:
    """Mean PSNR/SSIM of a group of frames (``count`` frames; NaN when the group is empty)."""

    psnr: float
    ssim: float
    count: int

    def to_json(self) -> dict[str, float | int | None]:
        def finite(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 6)

        return {"psnr": finite(self.psnr), "ssim": finite(self.ssim), "frames": self.count}


def summarize(scores: list[FrameScore]) -> Summary:
    if not scores:
        return Summary(float("nan"), float("nan"), 0)
    return Summary(
        psnr=float(np.mean([s.psnr for s in scores])),
        ssim=float(np.mean([s.ssim for s in scores])),
        count=len(scores),
    )


@dataclass(frozen=True)
class ClipScores:
    """Key, intermediate and all-frame summaries of one method on one clip."""

    key: Summary
    inter: Summary
    all: Summary

    @staticmethod
    def from_frames(scores: list[FrameScore], keys_given: bool = False) -> "ClipScores":
        """``keys_given``: the key frames are inputs passed through (their PSNR is capped, not earned), so
        "all" leaves them out."""
        inter = summarize([s for s in scores if not s.is_key])
        return ClipScores(
            key=summarize([s for s in scores if s.is_key]),
            inter=inter,
            all=inter if keys_given else summarize(list(scores)),
        )

    def to_json(self) -> dict[str, dict[str, float | int | None]]:
        return {"key": self.key.to_json(), "inter": self.inter.to_json(), "all": self.all.to_json()}


def mean_over_clips(clips: list[ClipScores]) -> ClipScores:
    """Each group's mean over clips (clips where the group is empty are left out of that group)."""

    def avg(parts: list[Summary]) -> Summary:
        parts = [p for p in parts if p.count > 0]
        if not parts:
            return Summary(float("nan"), float("nan"), 0)
        return Summary(
            psnr=float(np.mean([p.psnr for p in parts])),
            ssim=float(np.mean([p.ssim for p in parts])),
            count=int(sum(p.count for p in parts)),
        )

    return ClipScores(
        key=avg([c.key for c in clips]),
        inter=avg([c.inter for c in clips]),
        all=avg([c.all for c in clips]),
    )


__all__ = [
    "PSNR_CAP_DB",
    "ClipScores",
    "FrameScore",
    "Summary",
    "mean_over_clips",
    "psnr",
    "score_frame",
    "ssim",
    "summarize",
    "to_unit_float",
]
