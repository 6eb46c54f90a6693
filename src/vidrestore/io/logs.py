"""FFmpeg's own log lines, kept off the terminal."""

from __future__ import annotations


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's own log lines off the terminal: errors reach the user as one line each,
    from the exceptions.

    Level ``None`` installs PyAV's no-op callback. Any numeric level (PANIC included) installs the
    Python one, which still forwards ERROR messages and takes the GIL to do it. A frame-threaded
    decoder that logs an error while the main thread frees it, holding the GIL, then deadlocks:
    the main thread waits for the codec threads, and they wait for the GIL.
    """
    import av.logging

    av.logging.set_level(None)
