"""Side-by-side crops for ``vidrestore eval --save-frames``: input, each method, ground truth."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from vidrestore.errors import OutputError

_LABEL_H = 18
_GAP = 4


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "clip"


def pick_crop(truth: np.ndarray, reference: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) of the size x size window (clipped to the frame) where ``truth`` differs most from
    ``reference`` (the input nearest in time): where the motion and the blur are."""
    import cv2

    h, w = truth.shape[:2]
    ch, cw = min(size, h), min(size, w)
    diff = np.abs(truth.astype(np.float32) - reference.astype(np.float32)).mean(axis=2)
    if ch == h and cw == w:
        return 0, 0, h, w
    score = cv2.boxFilter(diff, -1, (cw, ch), normalize=True, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = score[: h - ch + 1, : w - cw + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y), int(x), ch, cw


def _labelled(img: np.ndarray, label: str) -> np.ndarray:
    import cv2

    strip = np.full((_LABEL_H, img.shape[1], 3), 255, np.uint8)
    label = label[:40]
    scale = 0.4
    while scale > 0.2 and cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > img.shape[1] - 4:
        scale -= 0.05
    cv2.putText(strip, label, (2, _LABEL_H - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], axis=0)


def compose(panels: Sequence[tuple[str, np.ndarray]], crop: tuple[int, int, int, int]) -> np.ndarray:
    """The labelled crops side by side, with white gaps, as one RGB uint8 image."""
    y, x, h, w = crop
    parts = []
    for i, (label, img) in enumerate(panels):
        if i:
            parts.append(np.full((h + _LABEL_H, _GAP, 3), 255, np.uint8))
        parts.append(_labelled(np.ascontiguousarray(img[y : y + h, x : x + w]), label))
    return np.concatenate(parts, axis=1)


def save_panel(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OutputError(f"{path}: cannot write the PNG")


__all__ = ["compose", "pick_crop", "safe_name", "save_panel"]
