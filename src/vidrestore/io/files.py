"""The output's temp file (a hidden file beside the target, renamed onto it at the end) and
what counts as a full disk."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import time
import uuid
from pathlib import Path

from vidrestore import interrupts
from vidrestore.errors import OutputError

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


def temp_path_for(target: Path) -> Path:
    """A hidden file beside ``target`` with the same extension (so the muxer is the same), named
    with this process's id: ``.NAME.vidrestore-PID-XXXXXXXX.partial.EXT``."""
    return target.with_name(f".{target.stem}.vidrestore-{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{target.suffix}")


def _partial_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(target.stem)}\.vidrestore-(\d+)-[0-9a-f]{{8}}\.partial{re.escape(target.suffix)}")


def _process_gone(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's
        return False
    return False


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove the partial files a run killed outright (``kill -9``, power loss) left beside ``target``:
    those whose process is gone. A live process's partial (another run on the same output) is kept.
    Returns what was removed."""
    pattern = _partial_pattern(target)
    removed = []
    try:
        names = os.listdir(target.parent if str(target.parent) else ".")
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or not _process_gone(int(m.group(1))):
            continue
        stale = target.with_name(name)
        try:
            os.unlink(stale)
            removed.append(stale)
        except OSError:
            pass
    return removed


def sweep_partials(targets: list[Path], timeout: float = 10.0) -> None:
    """After this run's workers were stopped (Ctrl-C with ``--workers``): remove their partial files beside
    ``targets`` as their processes end, waiting up to ``timeout`` seconds for the last of them."""
    deadline = time.monotonic() + timeout
    while True:
        left = False
        for target in targets:
            remove_stale_partials(target)
            pattern = _partial_pattern(target)
            try:
                folder = target.parent if str(target.parent) else "."
                left = left or any(pattern.fullmatch(n) for n in os.listdir(folder))
            except OSError:
                continue
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def create_temp(target: Path) -> Path:
    """Create the temp file now, so an unwritable directory fails before any work is done (after
    removing stale partials of earlier runs on the same target that were killed)."""
    remove_stale_partials(target)
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


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_renameat2: object = None  # the libc function once looked up; False where there is none


def _libc_renameat2() -> "ctypes._CFuncPtr | None":
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            pass
    return _renameat2 or None


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` only if ``dst`` does not exist (FileExistsError if it does):
    renameat2(RENAME_NOREPLACE) (Linux 3.15+), else a hard link and unlink, else a check and a rename."""
    fn = _libc_renameat2()
    if fn is not None:
        if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # EINVAL: no such flag here
            raise OSError(err, os.strerror(err), str(dst))
    try:
        os.link(src, dst)  # fails with EEXIST if dst exists
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
    else:
        os.unlink(src)
        return
    if os.path.lexists(dst):  # the last resort: a small window remains, on file systems with neither
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.replace(src, dst)


def commit(temp: Path, target: Path, overwrite: bool = False) -> Path:
    """Move the finished ``temp`` onto ``target``; without ``overwrite``, never over a file that
    appeared there while running (another run, another program): OutputError, exit 4, temp removed.
    SIGINT/SIGTERM wait until the rename and its record (:mod:`vidrestore.interrupts`) are done; one
    that is still pending (it came during an import) stops the commit."""
    interrupts.raise_pending()
    with interrupts.held():
        try:
            if overwrite:
                os.replace(temp, target)
            else:
                _rename_noreplace(temp, target)
        except FileExistsError:
            remove_temp(temp)
            raise OutputError(f"output appeared while running: {target} (use --overwrite to replace it)") from None
        except OSError as err:
            remove_temp(temp)
            raise OutputError(f"cannot move the finished file onto {target}: {err.strerror or err}") from None
        interrupts.mark_committed(target)
    return target
