"""Real footage decoded whole into memory, for training samples (``vidrestore.train.prior_data``) and texture
frames (``vidrestore.synth.textures``): small, reduced-size uint8 tensors, not the streaming reader of
``vidrestore.io``."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch

from vidrestore.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def decode_video(
    path: str | Path,
    *,
    scale: float | None = None,
    max_side: int | None = None,
    max_frames: int | None = None,
    keep_every: int | None = None,
    sample_count: int | None = None,
    skip_frames: int = 0,
) -> torch.Tensor:
    """Decode a video's first video stream into a uint8 tensor [N,H,W,3] (RGB).

    ``scale`` multiplies the size, or ``max_side`` caps the longer side (no upscaling). ``keep_every``
    keeps every k-th frame; ``sample_count`` keeps about that many frames spread over the whole video.
    ``max_frames`` stops after that many kept frames. ``skip_frames`` drops the video's first frames
    before anything else (a held-out part, e.g. the frames an evaluation scores).
    """
    path = Path(path)
    try:
        container = av.open(str(path))
    except Exception as err:  # av raises several error types for unreadable files
        raise InputError(f"cannot open video {path}: {err}") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w0, h0 = stream.codec_context.width, stream.codec_context.height
        s = 1.0
        if scale is not None:
            s = float(scale)
        elif max_side is not None:
            s = min(1.0, max_side / max(w0, h0))
        w, h = max(2, int(round(w0 * s)) // 2 * 2), max(2, int(round(h0 * s)) // 2 * 2)
        step = keep_every or 1
        if sample_count:
            total = stream.frames or 0
            if total <= 0 and stream.duration and stream.average_rate:
                total = int(stream.duration * stream.time_base * stream.average_rate)
            total -= skip_frames
            step = max(1, total // sample_count) if total > 0 else 1
            max_frames = sample_count if max_frames is None else min(max_frames, sample_count)
        frames: list[np.ndarray] = []
        try:
            for n, frame in enumerate(container.decode(stream)):
                if n < skip_frames:
                    continue
                if (n - skip_frames) % step:
                    continue
                if (frame.width, frame.height) != (w, h):
                    frame = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except Exception as err:  # corrupt part-way: keep what decoded, if anything
            if not frames:
                raise InputError(f"cannot decode video {path}: {err}") from None
    if not frames:
        raise InputError(f"{path}: no frames decoded" + (f" after the first {skip_frames}" if skip_frames else ""))
    return torch.from_numpy(np.stack(frames))


def list_videos(folder: str | Path) -> list[Path]:
    """The videos in ``folder`` by name (``folder`` itself if it is a file)."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise InputError(f"{folder} does not exist")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no videos ({', '.join(VIDEO_SUFFIXES)})")
    return files
