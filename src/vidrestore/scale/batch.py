"""Run many enhance jobs, or one job in chunks, on a pool of workers (:mod:`vidrestore.scale.pool`).

``enhance_all(configs, options)``: every job is planned first (a bad file is reported and skipped, an
existing output without ``--overwrite`` is skipped); a long video becomes chunks (:mod:`~.chunks`) with a
job folder for resuming (:mod:`~.manifest`), a short one a single task; every task goes to the pool, a
file's chunks are joined (:mod:`vidrestore.io.join`) as soon as its last one is done. Ctrl-C stops the
workers and removes every job folder and partial file of this run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from vidrestore import pipeline, weights
from vidrestore.runtime import gpu_count
from vidrestore import plan as planning
from vidrestore.config import EnhanceConfig, ScaleOptions
from vidrestore.errors import VidrestoreError
from vidrestore.io import files as io_files
from vidrestore.io.index import frame_index
from vidrestore.io.join import join
from vidrestore.pipeline import Part, Progress, RunSummary
from vidrestore.plan import Plan
from vidrestore.scale import chunks as ch
from vidrestore.scale import manifest
from vidrestore.scale import pool as pools
from vidrestore.scale.options import RAY_EXTRA, FileResult, ray_installed

OnNote = Callable[[str], None]


@dataclass
class _File:
    number: int
    config: EnhanceConfig
    planned: Plan
    job: Any = None  # manifest.Job when chunked
    total_out: int = 0
    left: set[int] = field(default_factory=set)
    started: float = 0.0
    frames_in: int = 0
    frames_out: int = 0
    cuts: int = 0
    notes: list[str] = field(default_factory=list)
    device: str = ""
    dtype: str = ""
    result: FileResult | None = None


@dataclass(frozen=True)
class BatchProgress(Progress):
    files_done: int = 0
    files_total: int = 0


def default_workers(note: OnNote, device: str = "auto") -> int:
    """One worker per GPU (where Ray is installed to run them; else one, with a note), one on a CPU."""
    if device not in ("auto", "cuda"):
        return 1  # a device named: that one
    gpus = gpu_count()
    if gpus > 1 and not ray_installed():
        note(f"{gpus} GPUs, one used: {RAY_EXTRA} runs a worker on each")
        return 1
    return max(1, gpus)


def enhance_all(configs: Sequence[EnhanceConfig], options: ScaleOptions = ScaleOptions(),  # noqa: B008 (frozen)
                progress: Callable[[BatchProgress], None] | None = None, notes: OnNote | None = None,
                skipped: Sequence[FileResult] = (), pool: Any = None,
                planned: Sequence[Plan | None] | None = None) -> list[FileResult]:
    """Every job of ``configs`` (``skipped``: files the caller has already set aside, reported with the
    rest; ``planned``: the jobs' plans where the caller made them); returns one result per file, by input
    path. ``pool``: one already set up (tests, bench)."""
    note = notes or (lambda msg: None)
    results: list[FileResult] = list(skipped)
    files = _planned_files(configs, planned, results)
    if not files:
        return _ordered(results)
    workers = options.workers or (pool.workers if pool is not None
                                  else default_workers(note, files[0].config.run.device))
    several = len(files) > 1

    def file_note(f: _File) -> OnNote:
        return (lambda msg: note(f"{f.config.input.name}: {msg}")) if several else note

    tasks = _all_tasks(files, options, workers, note, file_note)
    own_pool = pool is None
    start = time.perf_counter()
    try:
        if own_pool and tasks:
            pool = _make_pool(files[0].config, options, workers)
        streamed = bool(pool is not None and getattr(pool, "streams_notes", False) and not several)
        latest: dict[tuple[int, int], Progress] = {}
        done_out = [0]

        def report() -> None:
            if progress is None:
                return
            out = done_out[0] + sum(p.frames_out for p in latest.values())
            fin = sum(p.frames_in for p in latest.values()) + sum(f.frames_in for f in files)
            total = sum(f.total_out for f in files if f.result is None or f.result.status == "done")
            finished = sum(1 for f in files if f.result is not None)
            progress(BatchProgress(fin, out, None, total or None, time.perf_counter() - start, finished,
                                   len(files)))

        def on_progress(key: tuple[int, int], p: Progress) -> None:
            latest[key] = p
            report()

        def on_done(task: Any, result: Any) -> None:
            latest.pop(task.key, None)
            f = files[task.key[0]]
            if f.result is not None:
                return
            if isinstance(result, VidrestoreError):
                _fail(f, result)
            else:
                done_out[0] += result.frames_out
                if task.part is None and not streamed:
                    for msg in result.notes:
                        file_note(f)(msg)
                _chunk_done(f, task, result, file_note(f))
            report()

        if tasks:
            pool.run(tasks, on_progress, on_done, note if streamed else None,
                     skip=lambda t: files[t.key[0]].result is not None)
    except BaseException:
        workers_stopped = pool is not None and own_pool and getattr(pool, "pids", None) is not None
        if pool is not None and own_pool:
            pool.stop()
            pool = None
        for f in files:
            if f.job is not None and (f.result is None or f.result.status != "done"):
                f.job.remove()  # Ctrl-C: nothing of this run is left (a crash or kill -9 leaves it to resume)
        if workers_stopped:  # worker processes writing whole files were killed: their partial files go too
            io_files.sweep_partials([f.config.output for f in files if f.result is None or f.result.status != "done"])
        raise
    finally:
        if pool is not None and own_pool:
            pool.stop()
    for f in files:
        assert f.result is not None
        results.append(f.result)
    return _ordered(results)


def _planned_files(configs: Sequence[EnhanceConfig], planned: Sequence[Plan | None] | None,
                   results: list[FileResult]) -> list[_File]:
    """Each job with its plan (the caller's where given); a job whose plan fails goes to ``results``."""
    files: list[_File] = []
    for i, config in enumerate(configs):
        try:
            made = planned[i] if planned is not None else None
            files.append(_File(len(files), config, made if made is not None else planning.plan(config)))
        except VidrestoreError as err:
            results.append(FileResult(config.input, config.output, "failed", str(err), err))
    return files


def _all_tasks(files: list[_File], options: ScaleOptions, workers: int, note: OnNote,
               file_note: Callable[[_File], OnNote]) -> list[Any]:
    """Every file's tasks (the whole file, or its chunks left to do), with the notes they call for; a chunked
    file whose chunks were all done by an earlier run is joined now."""
    tasks: list[Any] = []
    for f in files:
        made = _tasks_of(f, options, workers, note)
        if len(files) == 1 and 0 < len(made) < workers:
            idle = workers - len(made)
            note(f"{f.config.input.name}: it is too short to split into more than {len(made)} piece(s), so {idle} "
                 f"of the {workers} workers {'has' if idle == 1 else 'have'} nothing to do")
        if f.job is not None:  # chunks: the plan's notes once here (a whole file's run says them itself)
            for msg in f.planned.notes:
                f.notes.append(msg)
                file_note(f)(msg)
        tasks.extend(made)
    for f in files:
        if f.job is not None and not f.left:
            _finish(f, file_note(f))
    return tasks


def _ordered(results: list[FileResult]) -> list[FileResult]:
    return sorted(results, key=lambda r: str(r.input))


def _make_pool(config: EnhanceConfig, options: ScaleOptions, workers: int) -> Any:
    if workers > 1 or options.ray is not None:
        return pools.RayPool(config, workers, options.ray, per_worker=config.threads)
    return pools.LocalPool(config)


def _tasks_of(f: _File, options: ScaleOptions, workers: int, note: OnNote) -> list[Any]:
    """One task for the whole file, or one per chunk (a long video, or ``--chunks N``)."""
    p, config = f.planned, f.config
    f.total_out = (p.info.frame_count or 0) * p.factor
    f.started = time.perf_counter()
    whole = [pools.Task((f.number, -1), config, p)]
    f.left = {-1}
    if p.runs_whole(options.chunks, workers):
        if p.whole_note(options.chunks):
            note(p.whole_note(options.chunks))
        return whole
    index = frame_index(Path(config.input), p.info.video_index)
    if index is None or len(index) != p.info.frame_count:
        if options.chunks is not None:
            note(f"{config.input.name}: its packets do not locate every frame exactly, so it runs in one piece")
        return whole
    chunks = ch.plan_chunks(index, options.chunks, workers)
    if len(chunks) == 1:
        if options.chunks not in (None, 1):
            note(f"{config.input.name}: too short to split into {options.chunks} chunks: one piece")
        return whole
    if options.chunks is not None and len(chunks) < options.chunks:
        note(f"{config.input.name}: {len(chunks)} chunks (it is too short for more)")
    job = manifest.Job.open(Path(config.output), manifest.input_identity(Path(config.input)),
                            manifest.output_options(config, _weights_id(config)), chunks, note)
    f.job = job
    f.left = {c.number for c in job.todo}
    for n in job.done:
        f.frames_in += chunks[n].frames
        f.frames_out += job.done[n]["frames_out"]
    if not f.left:
        return []  # every chunk was done by an earlier run: only the join is left
    return [pools.Task((f.number, c.number), config, p,
                       Part(c.start, c.stop, ch.span_of(index, c), job.chunk_path(c.number)))
            for c in job.todo]


def _weights_id(config: EnhanceConfig) -> str:
    spec = config.run.weights or weights.DEFAULT_WEIGHTS
    path = Path(spec)
    return f"sha256:{weights.sha256_file(path)}" if path.is_file() else str(spec)


def _fail(f: _File, err: VidrestoreError) -> None:
    if f.job is not None:
        f.job.remove()
    f.result = FileResult(f.config.input, f.config.output, "failed", str(err), err)


def _chunk_done(f: _File, task: Any, summary: RunSummary, note: OnNote) -> None:
    f.left.discard(task.key[1])
    f.frames_in += summary.frames_in
    f.frames_out += summary.frames_out
    f.cuts += summary.scene_cuts
    f.device, f.dtype = summary.device, summary.dtype
    if task.part is not None:
        for msg in summary.notes:  # a chunk's own notes (its encoder's, say): said once for the file
            if msg not in f.notes:
                f.notes.append(msg)
                note(msg)
        f.job.mark_done(task.key[1], summary.frames_out, summary.packets)
    if f.left:
        return
    if task.part is None:
        f.result = FileResult(f.config.input, f.config.output, "done", summary=summary)
        return
    _finish(f, note)


def _finish(f: _File, note: OnNote) -> None:
    """Join a file whose chunks are all done."""
    try:
        final = _join(f, note)
    except VidrestoreError as err:
        _fail(f, err)
        return
    f.result = FileResult(f.config.input, f.config.output, "done", summary=final)


def _join(f: _File, note: OnNote) -> RunSummary:
    p = f.planned
    temp = io_files.create_temp(Path(f.config.output))
    join(f.job.parts(), pipeline.writer_spec(p, temp), note)
    f.job.remove()
    seconds = time.perf_counter() - f.started
    return RunSummary(
        input=f.config.input, output=f.config.output, frames_in=f.frames_in, frames_out=f.frames_out,
        factor=p.factor, mode=f.config.mode, rate_in=p.rate_in, rate_out=p.rate_out, seconds=seconds,
        codec=p.codec, pix_fmt=p.pix_fmt, device=f.device, dtype=f.dtype, scene_cuts=f.cuts, notes=tuple(f.notes),
        variable_rate=p.variable_rate)
