"""Sharp source footage for evaluation: a video file, a folder of frames, or a folder of those.

* a video file -> one clip;
* a folder holding image files -> one clip, frames in natural name order (``2.png`` before ``10.png``);
* a folder holding video files and/or sub-folders of images -> one clip per entry, in name order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidrestore.errors import InputError, UsageError
from vidrestore.io.sequence import list_images

VIDEO_EXTS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m", ".mxf"})
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})


@dataclass(frozen=True)
class SourceEntry:
    """One clip to load: a video file or a folder of frames."""

    name: str
    path: Path
    kind: str  # "video" | "frames"


@dataclass(frozen=True)
class SourceClip:
    name: str
    frames: tuple[np.ndarray, ...]  # HxWx3 uint8 RGB, all the same size

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.frames[0].shape[:2]
        return w, h


def _images_in(folder: Path) -> list[Path]:
    return list_images(folder, IMAGE_EXTS)  # natural order, as enhance reads a folder


def discover(source: Path) -> list[SourceEntry]:
    """The clips a SOURCE argument stands for."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_file():
        return [SourceEntry(source.stem, source, "video")]
    if _images_in(source):
        return [SourceEntry(source.name or str(source), source, "frames")]
    entries = []
    for p in sorted(source.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
            entries.append(SourceEntry(p.stem, p, "video"))
        elif p.is_dir() and _images_in(p):
            entries.append(SourceEntry(p.name, p, "frames"))
    if not entries:
        raise InputError(f"{source}: holds no frames, videos or folders of frames")
    return entries


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``WxH`` -> (W, H); None stays None."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"size {text!r}: expected WxH, e.g. 640x360") from None
    if w < 1 or h < 1:
        raise UsageError(f"size {text!r}: width and height must be positive")
    return w, h


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == size:
        return frame
    import cv2

    shrink = size[0] < frame.shape[1] and size[1] < frame.shape[0]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _read_video(path: Path, max_frames: int | None, size: tuple[int, int] | None) -> list[np.ndarray]:
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames.append(_resize(frame.to_ndarray(format="rgb24"), size))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except InputError:
        raise
    except (av.error.FFmpegError, OSError) as err:
        if not frames:
            raise InputError(f"{path}: cannot be read as a video ({err})") from None
        # a clip corrupt part-way: keep what decoded
    return frames


def _read_frames(folder: Path, max_frames: int | None, size: tuple[int, int] | None) -> list[np.ndarray]:
    import cv2

    files = _images_in(folder)
    if max_frames is not None:
        files = files[:max_frames]
    frames = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{f}: cannot be read as an image")
        frames.append(_resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size))
    return frames


def load_clip(entry: SourceEntry, max_frames: int | None = None, size: tuple[int, int] | None = None) -> SourceClip:
    """Decode a clip to RGB uint8 frames (the first ``max_frames``; resized to ``size`` = (W, H))."""
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames {max_frames}: must be at least 1")
    if entry.kind == "video":
        frames = _read_video(entry.path, max_frames, size)
    else:
        frames = _read_frames(entry.path, max_frames, size)
    if not frames:
        raise InputError(f"{entry.path}: no frames")
    shape = frames[0].shape
    for i, f in enumerate(frames):
        if f.shape != shape:
            raise InputError(f"{entry.path}: frame {i} is {f.shape[1]}x{f.shape[0]}, not {shape[1]}x{shape[0]}")
    return SourceClip(entry.name, tuple(np.ascontiguousarray(f) for f in frames))


__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "SourceClip", "SourceEntry", "discover", "load_clip", "parse_size"]
