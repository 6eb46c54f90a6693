"""Typed errors that the CLI maps to exit codes and one-line messages."""

from __future__ import annotations


def one_line(err: BaseException) -> str:
    """An OS or library error's own message on one line (its ``strerror`` where it has one)."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


class VidrestoreError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; a subclass sets it with ``code=``."""

    exit_code = 1

    def __init_subclass__(cls, code: int = 1, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.exit_code = code


class UsageError(VidrestoreError, code=2):
    """Bad arguments: out-of-range values, unknown codec or container, same input and output."""


class InputError(VidrestoreError, code=3):
    """The input cannot be read: missing, not a video, no frames, corrupt part-way."""


class OutputError(VidrestoreError, code=4):
    """The output cannot be written: exists, directory not writable, disk full."""


class WeightsError(VidrestoreError, code=5):
    """Weights missing, corrupt, or not matching their known checksum."""


class ProcessingError(VidrestoreError, code=6):
    """A failure while running the model or the encoder (out of memory that retries could not fix, ...)."""


class Interrupted(VidrestoreError, code=130):
    """Ctrl-C: stopped by the user, nothing was written."""


class InternalError(VidrestoreError, code=70):
    """A bug: an exception nobody expected. The CLI says which command failed, not the exception's text
    (``VIDRESTORE_DEBUG=1`` shows the traceback)."""


# how torch's CPU allocator and OpenCV say they ran out of memory (their errors are RuntimeError and cv2.error)
_MEMORY_TEXTS = ("can't allocate memory", "insufficient memory", "failed to allocate", "out of memory",
                 "std::bad_alloc", "cannot allocate memory")


def is_memory_exhaustion(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) is the machine running out of memory: Python's
    MemoryError, torch's out-of-memory errors, OpenCV's "Insufficient memory", ENOMEM."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, MemoryError) or getattr(err, "errno", None) == 12:
            return True
        if type(err).__name__ in ("OutOfMemoryError", "error", "RuntimeError"):
            text = str(err).lower()
            if any(t in text for t in _MEMORY_TEXTS):
                return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


MEMORY_ADVICE = ("out of memory: try a smaller --batch or --tile (e.g. --tile 512), a lower resolution, "
                 "or a machine with more memory")


def interrupted_by(err: BaseException) -> bool:
    """Whether ``err`` was raised while a Ctrl-C/SIGTERM (a KeyboardInterrupt) was being handled: an interrupt
    that landed inside a lock's or a condition's bookkeeping comes out as RuntimeError("release unlocked
    lock") with the KeyboardInterrupt as its context. It is the interrupt, not a failure."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, KeyboardInterrupt):
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False

