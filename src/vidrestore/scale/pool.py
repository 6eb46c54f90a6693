"""Where the tasks of a job run: in this process one after another (:class:`LocalPool`), or on Ray actors,
one per worker, each with its model loaded once and ``num_gpus=1`` where there are GPUs (:class:`RayPool`).

A task is one :func:`vidrestore.pipeline.run`: a chunk of a video, or a whole one. Both pools call
``on_progress(key, Progress)`` as a task goes and ``on_done(task, summary or error)`` as it ends, on the
caller's thread, and ``stop()`` ends every worker (Ctrl-C).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from vidrestore import pipeline, runtime, threads
from vidrestore.config import EnhanceConfig
from vidrestore.errors import ProcessingError, UsageError, VidrestoreError
from vidrestore.io.logs import quiet_ffmpeg
from vidrestore.pipeline import Part, Progress, RunSummary
from vidrestore.scale.options import RAY_MISSING
from vidrestore.plan import Plan

PROGRESS_EVERY_S = 0.25
MAX_RETRIES = 2  # a task whose worker died is run again on a new worker, this many times


@dataclass(frozen=True)
class Task:
    key: tuple[int, int]  # (file, chunk); chunk -1: the whole file
    config: EnhanceConfig
    planned: Plan
    part: Part | None = None


OnProgress = Callable[[tuple[int, int], Progress], None]
OnDone = Callable[[Task, Any], None]
OnNote = Callable[[str], None]


def _run(task: Task, loaded: Any, progress: Callable[[Progress], None], notes: OnNote | None) -> RunSummary:
    return pipeline.run(task.config, progress=progress, notes=notes, loaded=loaded, planned=task.planned,
                        part=task.part)


class LocalPool:
    """The tasks in this process, in order; the model is loaded once (``runtime``: one already loaded)."""

    def __init__(self, config: EnhanceConfig, loaded: Any = None) -> None:
        self.workers = 1
        self.streams_notes = True  # run() hands a whole file's notes to ``notes`` as they come
        self._runtime = loaded if loaded is not None else runtime.load(config.run)

    def run(self, tasks: Sequence[Task], on_progress: OnProgress, on_done: OnDone, notes: OnNote | None,
            skip: Callable[[Task], bool] = lambda t: False) -> None:
        for task in tasks:
            if skip(task):
                continue
            try:
                summary = _run(task, self._runtime, lambda p, key=task.key: on_progress(key, p),
                               notes if task.part is None else None)
            except VidrestoreError as err:
                on_done(task, err)
                continue
            on_done(task, summary)

    def stop(self) -> None:
        pass


def ray_module() -> Any:
    """Ray, or a one-line UsageError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


class _Reports:
    """A small actor the workers tell their progress to; the caller reads it every ``PROGRESS_EVERY_S``."""

    def __init__(self) -> None:
        self.latest: dict[tuple[int, int], Progress] = {}

    def report(self, key: tuple[int, int], progress: Progress) -> None:
        self.latest[key] = progress

    def take(self) -> dict[tuple[int, int], Progress]:
        out, self.latest = self.latest, {}
        return out


class _Worker:
    """One Ray actor: the model loaded once, its torch/OpenCV threads set, then task after task."""

    def __init__(self, config: EnhanceConfig, per_worker: int, reports: Any) -> None:
        threads.apply(per_worker)
        quiet_ffmpeg()
        self._runtime = runtime.load(config.run)
        self._reports = reports

    def run(self, task: Task) -> Any:
        last = [0.0]

        def progress(p: Progress) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                self._reports.report.remote(task.key, p)

        try:
            return _run(task, self._runtime, progress, None)
        except VidrestoreError as err:
            return err  # the file's error, as a value: the caller reports it and goes on

    def pid(self) -> int:
        return os.getpid()


class RayPool:
    """``workers`` Ray actors on a local Ray started here (``address`` None; stopped by :meth:`stop`) or on
    the cluster at ``address`` ("auto": the one this machine belongs to)."""

    def __init__(self, config: EnhanceConfig, workers: int, address: str | None = None,
                 per_worker: int | None = None) -> None:
        ray = ray_module()
        self._ray = ray
        self._started_here = False
        self._temp_dir: str | None = None
        if not ray.is_initialized():
            logging.getLogger("ray").setLevel(logging.ERROR)
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            if address is None:
                # a Ray started here keeps its session (logs, sockets, spilled objects) in a folder of its own,
                # removed by stop(), not in /tmp/ray, where every run would leave one behind
                # (under /tmp where there is one: Ray's socket paths must stay under 108 bytes)
                tmp_root = "/tmp" if os.path.isdir("/tmp") else None
                self._temp_dir = tempfile.mkdtemp(prefix="vidrestore-ray-", dir=tmp_root)
                kwargs.update(num_cpus=max(workers, threads.resolve(None)), num_gpus=runtime.gpu_count(),
                              _temp_dir=self._temp_dir)
            else:
                _check_reachable(address)
                kwargs.update(address=address)
            try:
                ray.init(**kwargs)
            except Exception:  # ConnectionError and Ray's own: no cluster there
                self._remove_temp_dir()
                if address == "auto":
                    raise UsageError("--ray auto: no running Ray cluster found on this machine (start one with "
                                     "'ray start --head', or set RAY_ADDRESS)") from None
                raise UsageError(f"cannot connect to the Ray cluster at {address}" if address
                                 else "cannot start a local Ray") from None
            self._started_here = True
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        self.workers = workers
        self.streams_notes = False  # the notes come back with each task's summary
        per = per_worker or max(1, cpus // workers)
        self.threads = per
        self._reports = ray.remote(num_cpus=0)(_Reports).remote()
        self._actor = ray.remote(num_cpus=min(per, cpus) if address is None else 1, num_gpus=1 if gpus else 0)(_Worker)
        self._config = config
        self._actors = [self._new_actor() for _ in range(workers)]

    def _new_actor(self) -> Any:
        return self._actor.remote(self._config, self.threads, self._reports)

    def pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self._actors])

    def run(self, tasks: Sequence[Task], on_progress: OnProgress, on_done: OnDone, notes: OnNote | None,
            skip: Callable[[Task], bool] = lambda t: False) -> None:
        ray = self._ray
        queue = list(tasks)
        running: dict[Any, tuple[Task, Any]] = {}
        idle = list(self._actors)
        deaths: dict[tuple[int, int], int] = {}

        def feed() -> None:
            while idle and queue:
                task = queue.pop(0)
                if skip(task):
                    continue
                actor = idle.pop(0)
                running[actor.run.remote(task)] = (task, actor)

        feed()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=PROGRESS_EVERY_S)
            for key, p in ray.get(self._reports.take.remote()).items():
                on_progress(key, p)
            for ref in ready:
                task, actor = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError:  # the worker's process died (killed, out of memory)
                    self._actors.remove(actor)
                    replacement = self._new_actor()
                    self._actors.append(replacement)
                    idle.append(replacement)
                    deaths[task.key] = deaths.get(task.key, 0) + 1
                    if deaths[task.key] <= MAX_RETRIES:
                        queue.insert(0, task)  # the task again, on the new worker
                        continue
                    result = ProcessingError(f"a worker died {deaths[task.key]} times running {task.config.input.name}"
                                             + (f" (chunk {task.key[1]})" if task.key[1] >= 0 else ""))
                except ray.exceptions.RayError as err:
                    idle.append(actor)
                    result = _ray_failure(err)
                else:
                    idle.append(actor)
                on_done(task, result)
            feed()

    def stop(self) -> None:
        ray = self._ray
        for a in self._actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass
        if self._started_here:
            ray.shutdown()
            self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A cluster address (``HOST:PORT`` or ``ray://HOST:PORT``) must answer within ``timeout`` seconds: Ray
    itself waits minutes before it gives up."""
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address!r}: expected auto or HOST:PORT (or ray://HOST:PORT)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        raise UsageError(f"--ray {address}: no Ray cluster answers there") from None


def _ray_failure(err: BaseException) -> VidrestoreError:
    cause = getattr(err, "cause", None)
    if isinstance(cause, VidrestoreError):
        return cause
    if isinstance(cause, KeyboardInterrupt):
        raise KeyboardInterrupt
    return ProcessingError(f"a worker failed ({type(cause or err).__name__})")
