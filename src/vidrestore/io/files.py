"""The output's temp file (a hidden file beside the target, renamed onto it at the end) and
what counts as a full disk."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from vidrestore.errors import OutputError

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


def temp_path_for(target: Path) -> Path:
    """A hidden file beside ``target`` with the same extension (so the muxer is the same)."""
    return target.with_name(f".{target.stem}.vidrestore-{uuid.uuid4().hex[:8]}.partial{target.suffix}")


def create_temp(target: Path) -> Path:
    """Create the temp file now, so an unwritable directory fails before any work is done."""
    tmp = temp_path_for(target)
    try:
        with open(tmp, "xb"):
            pass
    except OSError as err:
        raise OutputError(f"cannot write to {target.parent or '.'}: {err.strerror or err}") from None
    return tmp


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and getattr(err, "errno", None) in _DISK_FULL


def remove_temp(tmp: Path) -> None:
    """Delete the temp file; one already gone, or that cannot be removed, is left be."""
    try:
        os.unlink(tmp)
    except OSError:
        pass
