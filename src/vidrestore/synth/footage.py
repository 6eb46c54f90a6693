"""Real footage decoded whole into memory, for training samples (``vidrestore.train.prior_data``) and texture
frames (``vidrestore.synth.textures``): small, reduced-size uint8 tensors, not the streaming reader of
``vidrestore.io``."""

from __future__ import annotations

from pathlib import Path

import torch

from vidrestore.errors import InputError
from vidrestore.io import clips

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def decode_video(path: str | Path, **options) -> torch.Tensor:
    """A video's first video stream as a uint8 tensor [N, H, W, 3] (RGB): :func:`vidrestore.io.clips.decode_video`
    (``scale``, ``max_side``, ``max_frames``, ``keep_every``, ``sample_count``, ``skip_frames``)."""
    return torch.from_numpy(clips.decode_video(path, **options))


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
