"""A folder of videos as input: which files are videos, and where each one's output goes (the same
relative path under the output folder). A folder of image frames stays an image sequence
(:mod:`vidrestore.io.sequence`); one that holds both is refused, it is unclear which is meant."""

from __future__ import annotations

from pathlib import Path

from vidrestore.errors import InputError, UsageError
from vidrestore.io.sequence import IMAGE_EXTS

VIDEO_EXTS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                        ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".vob", ".y4m", ".nut"})
# containers this tool writes: any other input's output is Matroska, which takes every codec
_WRITABLE = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".nut"})


def _files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def is_video_folder(folder: Path, recursive: bool = False) -> bool:
    """``folder`` holds videos (and no image frames beside them): enhance each."""
    folder = Path(folder)
    try:
        if not folder.is_dir():
            return False
        if recursive:
            return True
        files = _files(folder, False)
    except OSError:
        return False  # one that cannot be looked into: the plan's checks say what is wrong with it
    videos = [p for p in files if p.suffix.lower() in VIDEO_EXTS]
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    if videos and images:
        raise UsageError(f"{folder} holds both videos and image frames: give the videos' folder (each is "
                         "enhanced) or a frames folder (one image sequence), not both")
    return bool(videos)


def video_files(folder: Path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """The videos in ``folder`` (and its sub-folders with ``recursive``), in order; hidden files, and those
    under ``exclude`` (the output folder, when it is inside the input's), are left out."""
    folder = Path(folder)
    skip = Path(exclude).resolve() if exclude is not None else None
    videos = [p for p in _files(folder, recursive) if p.suffix.lower() in VIDEO_EXTS
              and (skip is None or skip not in p.resolve().parents)]
    if not videos:
        raise InputError(f"no videos in {folder}" + ("" if recursive else " (--recursive searches sub-folders)"))
    return videos


def output_for(video: Path, in_dir: Path, out_dir: Path) -> Path:
    """Where ``video``'s output goes: its path relative to ``in_dir``, under ``out_dir``."""
    rel = video.relative_to(in_dir)
    if rel.suffix.lower() not in _WRITABLE:
        rel = rel.with_suffix(".mkv")
    return Path(out_dir) / rel


def check_output_folder(in_dir: Path, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir}: the input is a folder of videos, so the output must be a folder")
    if not out_dir.exists() and out_dir.suffix.lower() in _WRITABLE:
        raise UsageError(f"-o {out_dir}: the input {in_dir} is a folder of videos, so the output must be a folder, "
                         f"not a {out_dir.suffix} file")
    if out_dir.resolve() == Path(in_dir).resolve():
        raise UsageError(f"-o {out_dir}: the outputs would go into the input folder: pick another folder")
