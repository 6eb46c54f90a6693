"""Ctrl-C and SIGTERM at the edges of a run: held off while the output is committed or cleaned up,
and a record of which outputs were committed, so that an interrupt after the final rename is not
reported as "no output was written".

Light (no torch, no PyAV): the CLI imports it before any sub-command.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)

_committed: list[Path] = []


def reset() -> None:
    """Forget committed outputs (the CLI calls this as each command starts)."""
    _committed.clear()


def mark_committed(path: Path) -> None:
    """``path`` is complete and in place: an interrupt from now on must not say otherwise."""
    _committed.append(Path(path))


def committed() -> tuple[Path, ...]:
    return tuple(_committed)


@contextmanager
def held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, then take their usual course (in the main
    thread; elsewhere, where handlers cannot be set, the block runs as is). For the few steps that
    must not be cut in two: the final rename and its record, removing a partial file."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in SIGNALS:
        previous[signum] = signal.signal(signum, lambda n, frame: caught.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for signum in dict.fromkeys(caught):  # once each: a second Ctrl-C changes nothing more
            signal.raise_signal(signum)


def ignore_from_now() -> dict[int, object]:
    """The process is on its way out (after an interrupt): further SIGINT/SIGTERM are ignored, so
    that a second Ctrl-C cannot turn the one-line exit into a traceback or a death by signal.
    Returns the handlers replaced (for a caller in the same process that wants them back)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, signal.SIG_IGN) for signum in SIGNALS}
