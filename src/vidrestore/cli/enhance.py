"""``vidrestore enhance``: options -> frozen EnhanceConfig -> pipeline.run(config, progress=...).

Kept thin: all the work is in :mod:`vidrestore.pipeline`. torch/av are imported only when the
command runs, never at import time.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import click

from vidrestore.cli.options import run_options, run_options_from, setup_threads, threads_option
from vidrestore.config import (ADAPT_HELP, CONTAINER_CODECS, DEFAULT_CODEC, DEFAULT_FACTOR, DEFAULT_SCENE_THRESHOLD,
                               MAX_FACTOR, MIN_FACTOR, MODES, EnhanceConfig, ScaleOptions)
from vidrestore.errors import UsageError
from vidrestore.io.logs import quiet_ffmpeg  # noqa: F401 (re-exported: the CLI commands use it from here)


class OneLineErrorsCommand(click.Command):
    """A click command whose argument errors become one line and exit 2 (a ``UsageError``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            raise UsageError(f"{err.format_message()} (see 'vidrestore {self.name} --help')") from None


PLAIN_PROGRESS_INTERVAL = 5.0  # seconds between plain progress lines; env VIDRESTORE_PROGRESS_INTERVAL


def plain_progress_interval() -> float:
    try:
        return max(0.0, float(os.environ.get("VIDRESTORE_PROGRESS_INTERVAL", PLAIN_PROGRESS_INTERVAL)))
    except ValueError:
        return PLAIN_PROGRESS_INTERVAL


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ProgressBar:
    """Progress on stderr (frames, output fps, ETA) fed by the pipeline's callback.

    On a terminal: a rich progress bar. It appears with the first progress report (so errors found
    before any work are just one line) and is transient: on success the summary line replaces it, on
    error the error does. Elsewhere (a log file, a pipe, a job scheduler): a plain line every
    ``interval`` seconds (default :data:`PLAIN_PROGRESS_INTERVAL`), the first one interval after the first report.
    """

    def __init__(self, description: str, interval: float | None = None) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, transient=True)
        self._task = self._progress.add_task(description, total=None, unit="frames", rate=f"{0.0:>7.1f} fps")
        self._started = False
        self._description = description
        self._interval = plain_progress_interval() if interval is None else interval
        self._last_line: float | None = None
        self._adapt_task = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._progress.stop()
            self._started = False

    def update(self, p) -> None:
        if not self.console.is_terminal:
            self._plain(p)  # no live bar in logs and pipes: a line every few seconds
            return
        if not self._started:
            self._progress.start()
            self._started = True
        fps = p.frames_out / p.elapsed if p.elapsed > 0 else 0.0
        total = p.total_out if p.total_out and p.total_out >= p.frames_out else None
        self._progress.update(self._task, completed=p.frames_out, total=total, rate=f"{fps:>7.1f} fps")

    def _plain(self, p) -> None:
        now = time.monotonic()
        if self._last_line is None:
            self._last_line = now  # the first line one interval after the first report: short runs print none
        if now - self._last_line < self._interval:
            return
        self._last_line = now
        fps = p.frames_out / p.elapsed if p.elapsed > 0 else 0.0
        if p.total_out and p.total_out >= p.frames_out:
            done = f"{p.frames_out}/{p.total_out} frames ({100 * p.frames_out // p.total_out}%)"
            eta = f", ETA {_clock((p.total_out - p.frames_out) / fps)}" if fps > 0 else ""
        else:
            done, eta = f"{p.frames_out} frames", ""
        self.console.print(f"{self._description}: {done}, {fps:.1f} fps, elapsed {_clock(p.elapsed)}{eta}",
                           markup=False, highlight=False, soft_wrap=True)

    def adapt(self, p) -> None:
        """``--adapt``'s fine-tuning (a :class:`vidrestore.train.adapt.AdaptProgress`): seconds of its budget, and
        the held-out score against the base network's."""
        score = (f"held-out {p.current_db - p.base_db:+.2f} dB" if p.base_db is not None and p.current_db is not None
                 else "making its windows")
        if not self.console.is_terminal:
            now = time.monotonic()
            if p.phase == "done" or self._last_line is None or now - self._last_line >= self._interval:
                self._last_line = now
                self.console.print(f"{self._description}: adapting, {p.seconds:.0f} s of {p.budget:.0f}, {score}",
                                   markup=False, highlight=False, soft_wrap=True)
            return
        if not self._started:
            self._progress.start()
            self._started = True
        if self._adapt_task is None:
            self._adapt_task = self._progress.add_task("adapting", total=round(p.budget), unit="s", rate="")
        self._progress.update(self._adapt_task, completed=round(min(p.seconds, p.budget)),
                              description=f"adapting ({score})")
        if p.phase == "done":
            self._progress.remove_task(self._adapt_task)
            self._adapt_task = None

    def note(self, message: str) -> None:
        self.console.print(f"note: {message}", highlight=False, soft_wrap=True)


def _codec_help() -> str:
    ext = {"matroska": "mkv"}
    by = "; ".join(f"{ext.get(fmt, fmt)}: {' else '.join(codecs)}" for fmt, codecs in CONTAINER_CODECS.items())
    return (f"Video encoder: libx264, libx265, libsvtav1, libvpx-vp9, ffv1, h264_nvenc, hevc_nvenc, ... "
            f"[default: by the output's extension ({by}; other containers: {DEFAULT_CODEC}); 10-bit input stays "
            f"10-bit where that codec plays well (AV1), H.264 gets 8 bits].")


@click.command("enhance", cls=OneLineErrorsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input", type=click.Path(path_type=Path, readable=False))  # plan's checks: exit 3, not click's 2
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, readable=False),
              help="Output video file (its extension picks the container), or frames: a folder (out/, an existing "
                   "folder or a name without extension: 000001.png ...) or a pattern such as out/%06d.png.")
@click.option("--fps", "fps", default=None, metavar="RATE",
              help="Frame rate of an image-sequence INPUT: 24, 30000/1001, 23.976 (= 24000/1001) [default: "
                   "30000/1001, with a note].")
@click.option("-k", "--fps-x", "factor", type=int, default=DEFAULT_FACTOR, show_default=True,
              help=f"Frame-rate multiplier K ({MIN_FACTOR}-{MAX_FACTOR}): N input frames become N*K.")
@click.option("--mode", type=click.Choice(MODES), default="joint", show_default=True,
              help="joint: deblur and interpolate; deblur: restore frames only (K=1); "
                   "interp: keep input frames as decoded, add new ones.")
@run_options
@click.option("--codec", default=None, help=_codec_help())
@click.option("--crf", type=int, default=None,
              help="Quality, lower is better [default: per codec, e.g. 18 for libx264].")
@click.option("--preset", default=None, help="Encoder preset, e.g. medium (x264/x265), 8 (svtav1), p5 (nvenc).")
@click.option("--scene-threshold", type=float, default=DEFAULT_SCENE_THRESHOLD, show_default=True,
              help="Scene-cut sensitivity in (0, 1]; lower finds more cuts. No frames are made across a cut.")
@click.option("--no-scene-detect", is_flag=True, help="Never treat a frame change as a scene cut.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--allow-gaps", is_flag=True,
              help="Frames missing from a constant-rate input (a damaged file, a recording with pauses): keep the "
                   "gap and go on, instead of stopping with an error. Frames that cannot be decoded join the gap; "
                   "on an input with no gap, a neighbouring frame stands in for each.")
@click.option("--adapt", "adapt", is_flag=False, flag_value="auto", default=None, metavar="[SECONDS|auto]",
              help=ADAPT_HELP + " Experimental: see the model card for what it gains today.")
@click.option("--save-adapted", "save_adapted", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE.safetensors", help="With --adapt: write the adapted network (if used) to this file.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, notes or summary (errors still go to stderr).")
@click.option("-r", "--recursive", is_flag=True, help="INPUT is a folder of videos: include its sub-folders.")
@click.option("--chunks", "chunks", default="auto", show_default=True, metavar="auto|N",
              help="Split each video into N chunks at key frames (seamless: each sees its neighbours' frames), "
                   "processed in parallel by the workers and resumed after a crash; auto: by length and workers; "
                   "1: never split.")
@click.option("--workers", type=int, default=None, metavar="N",
              help="Parallel workers, each with its own model (on Ray: pip install 'vidrestore[ray]') "
                   "[default: one per GPU, else one].")
@click.option("--ray", "ray_address", default=None, metavar="auto|ADDRESS",
              help="Run the workers on an existing Ray cluster [default: a local Ray, started for --workers > 1].")
@threads_option
def enhance(input: Path, output: Path, fps: str | None, factor: int, mode: str, codec: str | None, crf: int | None,
            preset: str | None, scene_threshold: float, no_scene_detect: bool, overwrite: bool, allow_gaps: bool,
            quiet: bool, recursive: bool, chunks: str, workers: int | None, ray_address: str | None,
            threads: int | None, adapt: str | None, save_adapted: Path | None, **run_kwargs) -> None:
    """Deblur and/or interpolate INPUT to K times its frame rate, writing OUTPUT.

    INPUT is a video, a folder of videos (OUTPUT: a folder; the names are kept), a folder of frames (PNG
    8/16-bit, JPEG, TIFF, EXR; natural order) or a pattern such as frames/%06d.png. Audio and subtitles are
    copied; the output has exactly N*K frames and the input's duration.
    """
    explicit = click.get_current_context().get_parameter_source("factor") != click.core.ParameterSource.DEFAULT
    if mode == "deblur" and factor != 1 and explicit:
        raise UsageError(f"--mode deblur keeps the frame rate, so --fps-x {factor} contradicts it: leave out --fps-x, "
                         "or use --mode joint to deblur and interpolate")
    scale = ScaleOptions(workers=workers, chunks=_chunks(chunks), ray=ray_address)
    if (workers or 1) > 1 or ray_address is not None:
        _check_ray()
    run = run_options_from(run_kwargs)
    make = lambda src, dst: EnhanceConfig(  # noqa: E731
        input=src, output=dst, factor=factor, mode=mode, run=run, codec=codec, crf=crf,
        preset=preset, scene_threshold=scene_threshold, scene_detect=not no_scene_detect, overwrite=overwrite,
        allow_gaps=allow_gaps, fps=fps, threads=threads, adapt=adapt,
        save_adapted=save_adapted if src == input else None)
    if _is_dir(input):  # a folder of videos, or of frames (one image sequence)
        from vidrestore.scale.folder import is_video_folder

        if is_video_folder(input, recursive):
            if save_adapted is not None:
                raise UsageError("--save-adapted is for one video: each video of a folder adapts on its own")
            _enhance_folder(input, output, recursive, make, scale, quiet, threads, factor)
            return
    if recursive:
        raise UsageError(f"--recursive: {input} is not a folder of videos")
    config = make(input, output)
    from vidrestore import plan

    planned = plan.plan(config)  # every check that needs no model, before torch is imported
    setup_threads(threads)  # before torch starts its thread pool
    quiet_ffmpeg()
    bar = None if quiet else ProgressBar(f"{Path(input).name} x{config.effective_factor}")
    with bar or contextlib.nullcontext():
        summary = _run_one(config, planned, scale, bar)
    if bar is not None:
        bar.console.print(summary.one_line(), highlight=False, soft_wrap=True)


def _run_one(config: EnhanceConfig, planned, scale: ScaleOptions, bar: ProgressBar | None):
    """One file: straight through the pipeline when it runs whole on one local worker; otherwise in chunks, on
    workers or Ray (:mod:`vidrestore.scale`)."""
    from vidrestore import runtime

    device = config.run.device
    one_worker = scale.ray is None and (scale.workers == 1 or (
        scale.workers is None and (device not in ("auto", "cuda") or runtime.gpu_count() <= 1)))
    progress, notes = (bar.update, bar.note) if bar is not None else (None, None)
    if one_worker and planned.runs_whole(scale.chunks, 1):
        from vidrestore import pipeline

        if notes is not None and planned.whole_note(scale.chunks):
            notes(planned.whole_note(scale.chunks))
        return pipeline.run(config, progress=progress, notes=notes, planned=planned,
                            adapting=bar.adapt if bar is not None else None)
    from vidrestore.scale.batch import enhance_all

    result, = enhance_all([config], scale, progress=progress, notes=notes, planned=[planned])
    if result.error is not None:
        raise result.error
    return result.summary


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False  # one that cannot be looked into: the plan's checks say what is wrong with it


def _chunks(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--chunks {text!r}: expected auto or a number of chunks") from None
    if n < 1:
        raise UsageError(f"--chunks {n}: must be auto or at least 1")
    return n


def _check_ray() -> None:
    from vidrestore.scale.options import RAY_MISSING, ray_installed

    if not ray_installed():
        raise UsageError(RAY_MISSING)


def _enhance_folder(in_dir: Path, out_dir: Path, recursive: bool, make, scale, quiet: bool, threads: int | None,
                    factor: int) -> None:
    """Every video of ``in_dir``: a bad one is reported and skipped, the others finish; a summary line, and
    the exit code of the first failure (0 when none failed)."""
    from vidrestore.scale import folder
    from vidrestore.scale.batch import enhance_all
    from vidrestore.scale.options import FileResult

    folder.check_output_folder(in_dir, out_dir)
    videos = folder.video_files(in_dir, recursive, exclude=out_dir)
    configs, skipped = [], []
    for video in videos:
        target = folder.output_for(video, in_dir, out_dir)
        config = make(video, target)
        if target.exists() and not config.overwrite:
            skipped.append(FileResult(video, target, "skipped", "the output exists (--overwrite replaces it)"))
            continue
        configs.append(config)
    setup_threads(threads)
    quiet_ffmpeg()
    for config in configs:
        config.output.parent.mkdir(parents=True, exist_ok=True)
    if quiet:
        results = enhance_all(configs, scale, skipped=skipped)
        console = None
    else:
        with ProgressBar(f"{len(videos)} videos x{factor}") as bar:
            results = enhance_all(configs, scale, progress=bar.update, notes=bar.note, skipped=skipped)
        console = bar.console
    failed = [r for r in results if r.status == "failed"]
    if console is not None:
        for r in results:
            line = (r.summary.one_line() if r.summary is not None else f"{r.input.name}: {r.status}: {r.message}")
            console.print(line, highlight=False, soft_wrap=True, markup=False)
        done = sum(1 for r in results if r.status == "done")
        console.print(f"{done} done, {len(failed)} failed, {len(results) - done - len(failed)} skipped "
                      f"of {len(results)} video{'' if len(results) == 1 else 's'}", highlight=False)
    if failed:
        import sys

        for r in failed:
            if console is None:
                print(f"vidrestore: error: {r.input.name}: {r.message}", file=sys.stderr)
        sys.exit(failed[0].error.exit_code if failed[0].error is not None else 1)
