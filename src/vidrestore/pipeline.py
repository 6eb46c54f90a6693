"""reader thread -> engine (windows, cache, batches) -> output timestamps -> writer thread.

``run(config, progress=...)`` does one ``enhance`` job: :func:`vidrestore.plan.plan` first checks
everything that can be checked before the model is loaded; the output goes into a temp file beside the
target, renamed at the end; on any error or Ctrl-C the temp file is removed and nothing else is touched.
No rich, no click here: progress goes to a callback. Timestamps: see :mod:`vidrestore.plan`.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from vidrestore import interrupts, runtime, threads
from vidrestore.config import EnhanceConfig, format_rate
from vidrestore.engine import Engine, EngineConfig
from vidrestore.errors import (MEMORY_ADVICE, InputError, ProcessingError, VidrestoreError, interrupted_by,
                               is_memory_exhaustion)
from vidrestore.io import failures, files
from vidrestore.io import writer as w
from vidrestore.io.reader import Damage, DecodedFrame, FrameReader, Span
from vidrestore.io.sequence import SequenceReader, SequenceWriter
from vidrestore.plan import Plan, plan
from vidrestore.train.adapt import AdaptProgress, adapt, auto_budget, read_for_adaptation
from vidrestore.weights import save_weights, sha256_file


@dataclass(frozen=True)
class Part:
    """One chunk of a longer job (:mod:`vidrestore.scale`): the frames of ``span`` are decoded (the chunk and
    its halo), frames ``start`` .. ``stop - 1`` emitted, with the timestamps of a run over the whole video;
    the video alone is encoded, into ``path``, with the settings of the whole job (the chunks are joined by
    stream copy)."""

    start: int
    stop: int
    span: Span
    path: Path

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Progress:
    frames_in: int  # input frames fully written out
    frames_out: int  # output frames handed to the encoder
    total_in: int | None  # expected input frames (None if unknown)
    total_out: int | None
    elapsed: float  # seconds since processing started (after model load)


@dataclass(frozen=True)
class RunSummary:
    input: Path
    output: Path
    frames_in: int
    frames_out: int
    factor: int
    mode: str
    rate_in: Fraction
    rate_out: Fraction
    seconds: float
    codec: str
    pix_fmt: str
    device: str
    dtype: str
    scene_cuts: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    variable_rate: bool = False  # VFR input: the output follows its timestamps, there is no one rate
    packets: tuple[tuple[int | None, int | None, int], ...] = ()  # a chunk's: its video packets' timing (io.join)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def one_line(self) -> str:
        rates = ("variable frame rate" if self.variable_rate
                 else f"{format_rate(self.rate_in)} -> {format_rate(self.rate_out)} fps")
        return (f"{self.input.name}: {self.frames_in} -> {self.frames_out} frames "
                f"({rates}, {self.mode}) in {self.seconds:.1f} s "
                f"({self.fps:.1f} fps) -> {self.output}")


def engine_config(config: EnhanceConfig) -> EngineConfig:
    """The engine settings of an enhance job."""
    return EngineConfig.of(config.effective_factor, config.mode, config.run, config.effective_scene_threshold)


def run(config: EnhanceConfig, progress: Callable[[Progress], None] | None = None,
        notes: Callable[[str], None] | None = None, model: torch.nn.Module | None = None,
        device: torch.device | None = None, dtype: torch.dtype | None = None,
        loaded: runtime.Runtime | None = None, planned: Plan | None = None, part: Part | None = None,
        adapting: Callable[[AdaptProgress], None] | None = None) -> RunSummary:
    """Run one enhance job. ``loaded`` (a model set up once for many jobs: bench, the Python API), or
    ``model``/``device``/``dtype`` (tests), replace what ``config.run`` would load. ``planned``: the job's
    :func:`~vidrestore.plan.plan`, when the caller made it already (the CLI does, before torch loads), so that
    the input is probed and scanned once. ``part``: run one chunk of the job (written to ``part.path``).
    ``adapting``: told how ``--adapt``'s fine-tuning goes, before the frames are made."""
    if planned is not None and planned.config != config:
        raise ValueError("run(): planned was made for another config")
    p = planned if planned is not None else plan(config)
    # the command's thread settings, whichever entry point runs the job (threads asked for: always)
    if config.threads is not None:
        total = threads.apply(p.threads)
    else:
        total = threads.ensure(p.threads)
    rt = loaded if loaded is not None else runtime.load(config.run, model=model, device=device, dtype=dtype)
    threads.set_network_threads(total, config.mode, rt.device.type)
    note_list: list[str] = []

    def note(msg: str) -> None:
        note_list.append(msg)
        if notes is not None:
            notes(msg)

    if part is None:  # a chunk's job says its plan's notes once, for all its chunks
        for msg in p.notes:
            note(msg)
    writer: Any = None
    reader: Any = None
    if part is not None and (p.source is not None or p.frames_target is not None):
        raise ValueError("run(): chunks are for video input and output")
    target = part.path if part is not None else Path(config.output)
    temp = None if p.frames_target is not None else files.create_temp(target)
    try:
        if config.adapt is not None and part is None:
            rt = _adapted(p, rt, note, adapting)
        engine = Engine(rt, engine_config(config))
        writer = _writer(p, temp, note, part)
        writer.start()
        reader = (SequenceReader(p.source) if p.source is not None
                  else FrameReader(p.info, keep_raw=config.mode == "interp", threads=p.threads,
                                   span=part.span if part is not None else None,
                                   damage=_damage(p)))
        start = time.perf_counter()
        frames_in, frames_out = _stream(p, reader, engine, writer, progress, start, part)
        if frames_in == 0:
            raise InputError(f"no decodable video frames in {config.input}")
        if reader.frames_lost:
            note(_lost_text(p, reader.frames_lost, reader.frames_stood_in))
        if reader.frames_misplaced:
            note(f"{reader.frames_misplaced} frame(s) of {config.input} were left out: their timestamps repeat or go "
                 "back (--allow-gaps)")
        writer.finish()
        seconds = time.perf_counter() - start
        if progress is not None:
            progress(Progress(frames_in, frames_out, frames_in, frames_out, seconds))
        cuts = engine.stats.cuts if part is None else sum(
            1 for j in engine.stats.cut_indices if part.start <= part.span.first + j < part.stop)
        return RunSummary(
            input=Path(config.input), output=target, frames_in=frames_in, frames_out=frames_out,
            factor=p.factor, mode=config.mode, rate_in=p.rate_in, rate_out=p.rate_out, seconds=seconds,
            codec=p.codec or _frames_format(p), pix_fmt=p.pix_fmt, device=str(rt.device), dtype=rt.dtype_name,
            scene_cuts=cuts, notes=tuple(note_list), variable_rate=p.variable_rate,
            packets=tuple(writer.packets or ()) if part is not None else ())
    except BaseException as err:
        with interrupts.held():  # a second Ctrl-C/SIGTERM waits until the partial file is gone
            if reader is not None:
                reader.close()  # stop decoding before the writer's file goes away
            if writer is not None:
                writer.abort()
            if temp is not None:
                _unlink(temp)
        if not isinstance(err, Exception) or isinstance(err, VidrestoreError):
            raise
        if interrupted_by(err):  # Ctrl-C landed inside a lock's bookkeeping (in the model's wait for a flow)
            raise KeyboardInterrupt from None
        mapped = failures.typed(err, writing=Path(config.output))
        if mapped is None and is_memory_exhaustion(err):
            mapped = ProcessingError(MEMORY_ADVICE)
        if mapped is None and isinstance(err, RuntimeError):  # torch's own failures (a device, a kernel)
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            mapped = ProcessingError(f"the model failed on {rt.device}: {detail}")
        if mapped is None:
            raise  # a bug: the CLI says so, without its text
        raise mapped from None
    finally:
        if reader is not None:
            reader.close()


def _adapted(p: Plan, rt: runtime.Runtime, note: Callable[[str], None],
             adapting: Callable[[AdaptProgress], None] | None) -> runtime.Runtime:
    """``--adapt``: the network fine-tuned on the input's first frames (:mod:`vidrestore.train.adapt`), where it
    beats the base network on held-out frames of the video; ``--save-adapted`` writes it."""
    config = p.config
    reader = (SequenceReader(p.source) if p.source is not None
              else FrameReader(p.info, threads=p.threads, damage=_damage(p)))
    frames = read_for_adaptation(reader)
    if config.adapt == "auto":
        seconds = p.info.duration or (p.info.frame_count / float(p.rate_in) if p.rate_in else 0.0)
        budget = auto_budget(seconds)
        note(f"--adapt auto: {budget:.0f} s of adaptation for {seconds:.1f} s of video")
    else:
        budget = float(config.adapt)
    result = adapt(rt.network, frames, config.mode, budget, rt.device, threads=max(1, p.threads),
                   progress=adapting)
    note(result.reason)
    if not result.used:
        if config.save_adapted is not None:
            note(f"--save-adapted: {config.save_adapted} not written (the adapted network is not used)")
        return rt
    if config.save_adapted is not None:
        meta = {"adapt.source": Path(config.input).name, "adapt.source_sha256": _source_sha256(p),
                "adapt.base_weights": rt.label, "adapt.mode": config.mode, "adapt.steps": str(result.steps),
                "adapt.seconds": f"{result.seconds:.1f}", "adapt.heldout_base": _json_scores(result.base),
                "adapt.heldout_adapted": _json_scores(result.adapted)}
        save_weights(result.model, config.save_adapted, meta)
        note(f"adapted network written to {config.save_adapted}")
    return replace(rt, model=runtime.wrap(result.model, config.run, rt.device))


def _json_scores(scores: dict[str, float]) -> str:
    return json.dumps({k: round(v, 3) for k, v in scores.items()}, sort_keys=True)


def _source_sha256(p: Plan) -> str:
    """The input file's sha256 (an image sequence's: of its frames' names and sizes, in order)."""
    if p.source is None:
        return sha256_file(p.config.input)
    h = hashlib.sha256()
    for f in p.source.files:
        h.update(f"{Path(f).name}\0{Path(f).stat().st_size}\n".encode())
    return h.hexdigest()


def _lost_text(p: Plan, lost: int, stood_in: int) -> str:
    """The note on frames an --allow-gaps run could not decode: stood in for, or left out (and where)."""
    parts = []
    if stood_in:
        parts.append("a neighbouring frame stands in for " + ("each" if stood_in == lost else str(stood_in)))
    left = lost - stood_in
    if left:
        count = "" if left == lost else f"{left} "
        parts.append(f"{count}left out, and the output keeps the gap" if p.grid is None else
                     f"{count}left out: the file's timestamps close up over them, so the output is that much shorter")
    return f"{lost} frame(s) of {p.config.input} could not be decoded (--allow-gaps: {'; '.join(parts)})"


def _damage(p: Plan) -> Damage | None:
    """With --allow-gaps, what the reader does with frames it cannot decode: on a constant-rate grid the
    output keeps, another frame stands in for each; else they are left out, part of the gap."""
    if not p.config.allow_gaps:
        return None
    if p.grid is None:
        return Damage()
    return Damage(rate=p.rate_in, start=p.grid.start_ticks * p.grid.time_base)


def _frames_format(p: Plan) -> str:
    return p.frames_target.suffix.lstrip(".") if p.frames_target is not None else ""


def _writer(p: Plan, temp: Path | None, note: Callable[[str], None], part: Part | None = None) -> Any:
    """The writer for the plan's output: image files, or the video encoder (with the source's side streams;
    a chunk's file has the video alone)."""
    if p.frames_target is not None:
        return SequenceWriter(p.frames_target, notes=note)
    assert temp is not None
    spec = writer_spec(p, temp)
    if part is not None:
        spec = replace(spec, target=part.path, source=None, overwrite=True)
    return w.VideoWriter(spec, notes=note, record_packets=part is not None)


def writer_spec(p: Plan, temp: Path) -> w.WriterSpec:
    """How the plan's video output is encoded (also what the chunks of a job are joined into)."""
    config, info = p.config, p.info
    return w.WriterSpec(
        target=Path(config.output), temp=temp, format_name=p.format_name, codec=p.codec,
        pix_fmt=p.pix_fmt, width=p.width, height=p.height, rate=p.rate_out, time_base=p.time_base_out,
        crf=config.crf, preset=config.preset, colour=info.colour, full_range_source=p.full_range_source,
        rotation=info.rotation, display_matrix=info.display_matrix, sample_aspect_ratio=info.sample_aspect_ratio,
        video_metadata=info.video_tags, container_metadata=info.container_tags,
        source=None if p.source is not None else Path(config.input), source_video_index=info.video_index,
        threads=p.threads, overwrite=config.overwrite, variable_rate=p.variable_rate)


def _stream(p: Plan, reader: Any, engine: Any, writer: Any, progress: Callable[[Progress], None] | None,
            start: float, part: Part | None = None) -> tuple[int, int]:
    """Feed decoded frames through the engine and hand outputs to the writer with exact pts. For a chunk,
    the halo's frames go through the engine, and only the chunk's outputs to the writer."""
    k = p.factor
    scale = p.pts_scale
    pending: collections.deque[DecodedFrame] = collections.deque()  # read, not yet fully written
    first = part.span.first if part is not None else 0
    lo, hi = (part.start, part.stop) if part is not None else (0, None)
    total_in = part.frames if part is not None else (p.info.frame_count or None)
    total_out = total_in * k if total_in else None

    def feed() -> Iterator[Any]:
        for decoded in reader:
            pending.append(decoded)
            yield decoded.rgb

    raw_ok = p.config.mode == "interp"
    made = 0  # outputs of the engine (a chunk's halo included)
    frames_out = 0
    frames_done = 0
    last_report = 0.0
    with reader:
        for out in engine.process(feed(), first=first):
            j, i = divmod(made, k)
            made += 1
            cur = pending[0]
            if cur.index != first + j:  # pragma: no cover - engine/pipeline bookkeeping out of step
                raise ProcessingError(f"internal error: output {made - 1} for input {cur.index}")
            emit = cur.index >= lo and (hi is None or cur.index < hi)
            if emit:
                n = cur.index * k + i  # the output frame's number in the whole video
                nxt_pts = pending[1].pts if len(pending) > 1 else cur.pts + cur.duration
                step = nxt_pts - cur.pts
                if p.grid is not None:  # constant rate: the exact K*rate grid
                    pts, dur = p.grid.pts(n), p.grid.step_ticks
                elif scale == k:
                    pts, dur = cur.pts * k + i * step, step
                else:  # coarse fallback: time base == input time base
                    pts, dur = cur.pts + (i * step) // k, max(1, step // k)
                frame: Any = out
                if raw_ok and out is cur.rgb and cur.raw is not None and _raw_matches(cur.raw, p):
                    frame = cur.raw
                writer.write(frame, pts, dur)
                frames_out += 1
            if i == k - 1:
                done = pending.popleft()
                done.raw = None
                if not emit:
                    continue
                frames_done += 1
                now = time.perf_counter()
                if progress is not None and (now - last_report >= 0.1 or frames_done == 1):
                    last_report = now
                    progress(Progress(frames_done, frames_out, total_in, total_out, now - start))
    return frames_done, frames_out


def _raw_matches(raw: Any, p: Plan) -> bool:
    return raw.format.name == p.pix_fmt and raw.width == p.width and raw.height == p.height


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass
