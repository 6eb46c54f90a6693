"""The one place where errors from FFmpeg (PyAV), the OS and memory become typed errors about the user's
files. Everything else that escapes is a bug, and the CLI says so (exit 70)."""

from __future__ import annotations

import errno
from pathlib import Path

import av

from vidrestore.errors import InputError, OutputError, ProcessingError, VidrestoreError, one_line
from vidrestore.io.files import is_disk_full

_CANNOT_WRITE = (errno.EIO, errno.EACCES, errno.EROFS, errno.EPERM)


def typed(err: BaseException, *, reading: Path | None = None, writing: Path | None = None,
          doing: str = "processing failed") -> VidrestoreError | None:
    """``err`` as a typed error about the file being read (``reading``) or written (``writing``); None for
    an error that no file explains (a bug). ``doing`` starts the message of an FFmpeg error that is
    neither a read nor a write of a file (e.g. "encoding failed at output frame 12")."""
    if isinstance(err, VidrestoreError):
        return err
    if is_disk_full(err):
        return OutputError(f"disk full while writing {writing}" if writing else "disk full")
    if isinstance(err, MemoryError):
        return ProcessingError("out of memory: try a smaller --batch or --tile")
    if isinstance(err, OSError) and getattr(err, "errno", None) in _CANNOT_WRITE:
        if writing is not None:
            return OutputError(f"cannot write {writing}: {one_line(err)}")
        if reading is not None:
            return InputError(f"cannot read {reading}: {one_line(err)}")
    if isinstance(err, av.error.FFmpegError):
        if reading is not None:
            return InputError(f"cannot decode {reading}: {one_line(err)}")
        return ProcessingError(f"{doing}: {one_line(err)}")
    return None
