"""Ctrl-C and SIGTERM at the edges of a run: held off while the output is committed or cleaned up,
and a record of which outputs were committed, so that an interrupt after the final rename is not
reported as "no output was written".

Light (no torch, no PyAV): the CLI imports it before any sub-command.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)

_committed: list[Path] = []
_pending: list[int] = []  # signals that arrived during an import (see raise_interrupt)

# how soon a signal that arrived in the middle of an import is delivered again
IMPORT_RETRY_S = 0.05


def reset() -> None:
    """Forget committed outputs (the CLI calls this as each command starts)."""
    _committed.clear()
    _pending.clear()


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
        restore(previous)
        for signum in dict.fromkeys(caught):  # once each: a second Ctrl-C changes nothing more
            signal.raise_signal(signum)


def restore(handlers: dict[int, object]) -> None:
    """Put back signal handlers that ``signal.signal`` returned (None, for one not set from Python: the
    default)."""
    for signum, handler in handlers.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def importing(frame: object) -> bool:
    """Whether ``frame`` (the main thread's frame, as a signal handler receives it) is inside an
    import: a module's code runs below importlib's frames."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):  # type: ignore[attr-defined]
            return True
        frame = frame.f_back  # type: ignore[attr-defined]
    return False


def raise_interrupt(signum: int, frame: object) -> None:
    """The CLI's SIGINT and SIGTERM handler: a KeyboardInterrupt, so that the run cleans up and
    exits 130, except in the middle of an import.

    A KeyboardInterrupt raised while torch, numpy or PyAV is being imported (torch also imports
    parts of itself on a model's first call) leaves the library half-initialised: the process then
    aborts from C++ ("terminate called after throwing pybind11::error_already_set"), fails with an
    import error, or dies by the signal (-2) after the one-line message, because the interpreter
    remembers a KeyboardInterrupt that went through code run during the import. So there the
    interrupt is kept pending: it is delivered again every ``IMPORT_RETRY_S`` until no import is
    running, and an output is never committed while one is pending (``raise_pending``)."""
    if importing(frame):
        _pending.append(signum)
        retry = threading.Timer(IMPORT_RETRY_S, _deliver_again, (signum,))
        retry.daemon = True
        retry.start()
        return
    _pending.clear()
    raise KeyboardInterrupt


def _deliver_again(signum: int) -> None:
    if _pending and signal.getsignal(signum) is raise_interrupt:
        os.kill(os.getpid(), signum)


def raise_pending() -> None:
    """A KeyboardInterrupt if a signal is still waiting for an import to end: called before an
    output is committed and as a command ends."""
    if _pending:
        _pending.clear()
        raise KeyboardInterrupt


def ignore_from_now() -> dict[int, object]:
    """The process is on its way out (after an interrupt): further SIGINT/SIGTERM are ignored, so
    that a second Ctrl-C cannot turn the one-line exit into a traceback or a death by signal.
    Returns the handlers replaced (for a caller in the same process that wants them back)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, signal.SIG_IGN) for signum in SIGNALS}
