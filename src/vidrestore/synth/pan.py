"""A smooth random texture panning diagonally: the bench's generated clip (exact, repeatable motion at any
size), as frames or as an encoded video."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from vidrestore.io.clips import write_video

CLIP_RATE = 30


def texture_pan(width: int, height: int, travel: float, seed: int = 0) -> Callable[[float], np.ndarray]:
    """A smooth random texture big enough to pan ``travel`` pixels diagonally; returns ``at(offset)``,
    the HxWx3 uint8 view at that (rounded) offset."""
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(travel)) + 2
    small = rng.integers(0, 256, ((height + margin) // 8 + 2, (width + margin) // 8 + 2, 3)).astype(np.uint8)
    tex = cv2.resize(small, (small.shape[1] * 8, small.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(-12, 13, tex.shape, dtype=np.int16)
    tex = np.clip(tex.astype(np.int16) + fine, 0, 255).astype(np.uint8)

    def at(offset: float) -> np.ndarray:
        o = int(round(offset))
        return np.ascontiguousarray(tex[o : o + height, o : o + width])

    return at


def moving_texture(width: int, height: int, count: int, seed: int = 0, speed: float = 3.0) -> Iterator[np.ndarray]:
    """``count`` HxWx3 uint8 frames of a smooth random texture panning diagonally (no scene cuts)."""
    at = texture_pan(width, height, speed * count, seed)
    for i in range(count):
        yield at(speed * i)


def write_clip(path: Path, width: int, height: int, count: int, codec: str = "libx264", seed: int = 0) -> Path:
    """Encode the moving texture as a short video at ``CLIP_RATE`` (the bench's input clip)."""
    return write_video(path, moving_texture(width, height, count, seed), CLIP_RATE, codec=codec)
