"""One background thread and a bounded queue between it and the thread that owns it.

Either side may produce: the reader's thread puts decoded frames for the caller to get, the
writer's caller puts frames for its thread to get. ``put`` and ``get`` wait in short steps so
that ``stop()`` (or Ctrl-C on the caller's side) is never stuck behind a full or empty queue.
Whatever the thread's body raises is kept (after ``on_error`` turned it into the error the caller
should see) and raised on the caller's side by its next ``put``, by ``get`` once the items queued
before it are taken, or by ``check()``.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

from vidrestore import threads
from vidrestore.errors import ProcessingError

END = object()  # the producing side is done: the caller puts it, or get() returns it once the thread has ended
_STEP_S = 0.1  # how long put/get wait at a time before looking at stop() and the thread again


class Worker:
    """``start()`` runs ``body()`` on a daemon thread named ``vidrestore-<name>``; ``stop()``
    makes put/get give up, empties the queue and waits for the thread to end."""

    def __init__(self, body: Callable[[], None], name: str, queue_size: int = 8,
                 on_error: Callable[[BaseException], BaseException] = lambda err: err) -> None:
        self.name = name
        self.error: BaseException | None = None
        self._body = body
        self._on_error = on_error
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"vidrestore-{self.name}", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise the thread's error, if it failed."""
        if self.error is not None:
            raise self.error

    def put(self, item: Any) -> bool:
        """Queue ``item``, waiting while the queue is full; False (not queued) once stopping.
        On the caller's side a failed or ended thread raises instead of waiting for ever."""
        while True:
            self.check()
            if not self.alive:
                raise ProcessingError(f"the {self.name} stopped unexpectedly")
            if self._stop.is_set():
                return False
            try:
                self._queue.put(item, timeout=_STEP_S)
                return True
            except queue.Full:
                continue

    def get(self) -> Any:
        """The next item, waiting for one; None once stopping. On the caller's side, once the
        thread has ended and its items are taken: its error raised, else END."""
        while True:
            try:
                item = self._queue.get(timeout=_STEP_S)
            except queue.Empty:
                if self.started and not self.alive:
                    try:  # queued just before the thread ended
                        return self._queue.get_nowait()
                    except queue.Empty:
                        self.check()
                        return END
                if self._stop.is_set():
                    return None
                continue
            if self._stop.is_set():
                return None
            return item

    def join(self) -> None:
        """Wait for the thread to end; once stopping, keep the queue empty so it cannot block."""
        if self._thread is None:
            return
        while self._thread.is_alive():
            if self._stop.is_set():
                try:
                    while True:
                        self._queue.get_nowait()
                except queue.Empty:
                    pass
            self._thread.join(timeout=0.05)

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def _run(self) -> None:
        threads.background_thread()  # the caller's thread (the network's) is the critical path
        try:
            self._body()
        except BaseException as err:  # handed to the caller's thread
            self.error = self._on_error(err)


class Reading:
    """The consumer side of a reader whose ``_worker`` thread puts items (frames): iterate them
    while the thread reads ahead; as a context manager (or with :meth:`close`) the thread and its
    file are released on every path, errors and Ctrl-C included."""

    _worker: Worker
    frames_read: int = 0
    frames_lost: int = 0  # frames the input promises that could not be read
    frames_stood_in: int = 0  # ... of which another frame stands in for on the output's grid (the rest are left out)
    frames_misplaced: int = 0  # frames left out because their timestamp repeats or goes back (--allow-gaps)

    def __enter__(self) -> "Reading":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        if not self._worker.started:
            self._worker.start()
        while True:
            item = self._worker.get()  # raises the thread's error after the items before it
            if item is END or item is None:
                return
            self.frames_read += 1
            yield item

    def close(self) -> None:
        """Stop reading and wait for the thread to end (emptying the queue it may wait on)."""
        self._worker.stop()
