"""Everything about an ``enhance`` job that can be decided before the model is loaded: paths, container,
codec, pixel format and size, rates and time bases. Light: no torch, so that bad jobs fail at once.

Timestamps. A constant-rate input (every timestamp within one tick of its place on the nominal rate's
grid, :mod:`vidrestore.io.timing`) gives output frame n at exactly ``start + n / (K * rate)``, on a time
base that holds that step, whatever the input container's precision (Matroska's milliseconds, say).
A variable-rate input keeps its own timestamps: with input frame j at pts p(j) (stream time base tb)
the output time base is tb/K and output frame j*K+i gets pts K*p(j) + i*(p(j+1) - p(j)), i.e. time
t(j) + i/K of the frame interval. Either way the last frame's interval is its own duration, so the
output lasts as long as the input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vidrestore import threads
from vidrestore.config import DEFAULT_SEQUENCE_RATE, EnhanceConfig, format_rate
from vidrestore.errors import InputError, OutputError, UsageError, one_line
from vidrestore.io import formats, sequence
from vidrestore.io.probe import VideoInfo, check_complete, check_picture, check_readable, probe
from vidrestore.io.timing import CfrGrid, InputTiming, cfr_grid, input_timing

_MAX_TIME_BASE_DEN = 2**31 - 1


# containers whose index seeks to an exact key frame, in and out: --chunks auto splits only these (--chunks N
# splits any whose packets locate every frame, and a chunk that cannot seek exactly fails with a clear error)
SEEKABLE = ("mp4", "mov", "matroska", "webm")
AUTO_CHUNK_FRAMES = 600  # --chunks auto on one worker: chunks of about this many frames (resume loses less)


@dataclass(frozen=True)
class Plan:
    """Everything decided before the model is loaded."""

    config: EnhanceConfig
    info: VideoInfo
    format_name: str
    pix_fmt: str
    full_range_source: bool
    factor: int
    rate_in: Fraction  # the constant input rate, or the nominal one for VFR input
    rate_out: Fraction
    time_base_out: Fraction
    pts_scale: int  # VFR: output pts = pts_scale * input pts + i * step  (pts_scale == factor normally)
    grid: CfrGrid | None = None  # CFR: output frame n at grid.pts(n); None for VFR input
    width: int = 0  # encoded size (the input's, or padded to even)
    height: int = 0
    notes: tuple[str, ...] = ()
    codec: str = ""  # the video encoder (the container's default when --codec is not given); "" for frames
    source: sequence.SequenceSource | None = None  # image-sequence input (info describes it as a video)
    frames_target: sequence.FramesTarget | None = None  # image-sequence output
    threads: int = 0  # CPU threads for the decoder and encoder (vidrestore.threads.resolve)

    @property
    def variable_rate(self) -> bool:
        return self.grid is None

    def runs_whole(self, chunks: int | None, workers: int) -> bool:
        """Whether this job runs in one piece, seen without its packets: ``--chunks 1``, frames in or out,
        ``--allow-gaps``, or (``--chunks auto``) a container that does not seek exactly, or a video shorter than
        two chunks on one worker. Otherwise :mod:`vidrestore.scale` splits it at key frames where it can."""
        if (chunks == 1 or self.source is not None or self.frames_target is not None or self.config.allow_gaps
                or self.config.adapt is not None):
            return True
        seekable = (self.info.frame_count_exact and any(n in SEEKABLE for n in self.info.container.split(","))
                    and any(n in SEEKABLE for n in self.format_name.split(",")))
        return chunks is None and (not seekable or (self.info.frame_count < 2 * AUTO_CHUNK_FRAMES and workers == 1))

    def whole_note(self, chunks: int | None) -> str | None:
        """What to tell a user who asked for chunks that this job cannot have (it runs whole)."""
        if chunks in (None, 1) or self.source is not None or self.frames_target is not None:
            return None
        if self.config.allow_gaps:  # frames lost to damage are found against the whole stream's timing
            return f"{self.config.input.name}: --allow-gaps runs it in one piece"
        if self.config.adapt is not None:  # one adaptation for the whole video
            return f"{self.config.input.name}: --adapt runs it in one piece"
        return None


def output_time_base(tb_in: Fraction, factor: int) -> tuple[Fraction, int]:
    """Output time base tb_in/K (every output pts an integer) and the pts multiplier K."""
    tb = Fraction(tb_in) / factor
    if tb.denominator <= _MAX_TIME_BASE_DEN:
        return tb, factor
    # an unusually fine input time base (tb/K would overflow a 32-bit denominator): keep tb_in, and the
    # in-between timestamps are rounded to it
    return Fraction(tb_in), 1


def _check_save_adapted(config: EnhanceConfig) -> None:
    """``--save-adapted FILE``: not the input or the output, not an existing file without --overwrite, in a
    folder that exists."""
    path = Path(config.save_adapted)
    for other in (Path(config.input), Path(config.output)):
        if os.path.abspath(path) == os.path.abspath(other):
            raise UsageError(f"--save-adapted {path}: that is the {'input' if other == config.input else 'output'}")
    if path.exists() and not config.overwrite:
        raise OutputError(f"{path} exists (use --overwrite to replace it)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist")


def plan(config: EnhanceConfig) -> Plan:
    """Validate the job and decide formats and rates; raises typed errors, writes nothing.
    Input and output may each be a video or an image sequence (:mod:`vidrestore.io.sequence`)."""
    src, dst = Path(config.input), Path(config.output)
    _check_reachable(src, InputError, "cannot read input")
    _check_reachable(dst, OutputError, "cannot write output")
    seq_in, seq_out = sequence.is_sequence_input(src), sequence.is_sequence_output(dst)
    if not seq_in:
        check_readable(src)
        if config.fps is not None:
            raise UsageError("--fps is for image-sequence input (a folder of frames or a pattern such as "
                             "frames/%06d.png); a video keeps its own rate")
    format_name = "image2"
    if seq_out:
        _check_no_codec_options(config)
    else:
        formats.check_target(dst, src, config.overwrite)
        format_name = formats.container_format_for(dst)
        if config.codec is not None:
            formats.check_codec(config.codec, format_name)
            formats.check_preset(config.codec, config.preset)
    notes: list[str] = []
    source = None
    k = config.effective_factor
    if seq_in:
        rate = config.fps if config.fps is not None else DEFAULT_SEQUENCE_RATE
        source = sequence.probe_sequence(src, rate)
        info = source.video_info()
        given = "given by --fps" if config.fps is not None else "the default; set it with --fps"
        notes.append(f"image sequence of {len(source.files)} frames at {format_rate(rate)} fps ({given})")
        timing = InputTiming(rate, Fraction(0))
    else:
        info = probe(src, scan=True)  # the packet scan finds a truncated file before any frame is processed
        check_complete(info)
        check_picture(info)
        timing = input_timing(src, info.video_index)
        if timing.gaps:
            notes.append(_gaps_text(src, timing, config.allow_gaps))
    check_host_memory(info.width, info.height, k, config.run.batch)
    if config.save_adapted is not None:
        _check_save_adapted(config)
    pix_fmt_src, full_range = formats.normalize_source_format(info.pix_fmt)
    target = None
    if seq_out:
        target = sequence.frames_target(dst, info.frame_count * k, config.overwrite)
        src_folder = src if src.is_dir() else (src.parent if str(src.parent) else Path("."))
        if seq_in and target.folder.resolve() == src_folder.resolve():
            raise UsageError(f"output frames would go into the input's folder {src_folder}: pick another folder")
        codec, pix_fmt, width, height = "", ("rgb48le" if info.bit_depth > 8 else "rgb24"), info.width, info.height
    else:
        codec = config.codec or formats.default_codec(format_name, info.bit_depth)
        if config.codec is None:
            formats.check_codec(codec, format_name)
            formats.check_preset(codec, config.preset)
        picture = formats.choose_picture(pix_fmt_src, codec, info.width, info.height)
        pix_fmt, width, height = picture.pix_fmt, picture.width, picture.height
        notes.extend(picture.notes)
    tb_out, scale = output_time_base(info.time_base, k)
    grid = None
    rate_in = info.rate
    if timing.rate is not None:
        rate_in = timing.rate
        grid = cfr_grid(rate_in * k, timing.start)
        tb_out, scale = grid.time_base, k
    return Plan(config=config, info=info, format_name=format_name, pix_fmt=pix_fmt,
                full_range_source=full_range, factor=k, rate_in=rate_in, rate_out=rate_in * k, time_base_out=tb_out,
                pts_scale=scale, grid=grid, width=width, height=height, notes=tuple(notes), codec=codec,
                source=source, frames_target=target, threads=threads.resolve(config.threads))


# host memory per pixel of the frame size that a run holds whatever the model: decoded frames queued by the
# reader and the writer and held by the engine (uint8 RGB), the engine's float tensors of its window frames and
# outputs, and the per-frame features (a bound measured on the bundled networks, about 100 bytes per pixel)
QUEUED_FRAMES = 8 + 8 + 4
FEATURE_BYTES_PER_PIXEL = 100


def host_bytes_per_pixel(factor: int, batch: int) -> int:
    """What a run keeps per pixel of its frame size, apart from the model's own working memory."""
    frames_u8 = 3 * (QUEUED_FRAMES + factor * batch * 2)
    tensors_f32 = 12 * (4 + factor)
    return frames_u8 + tensors_f32 + FEATURE_BYTES_PER_PIXEL


def available_memory(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes of memory available to new allocations: Linux MemAvailable, capped by this process's own cgroup
    limit (v2 or v1) and by its address-space limit (``ulimit -v``) less what it has mapped; None where it
    cannot be read."""
    try:
        with open(proc / "meminfo", encoding="ascii") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    for limit, usage in _cgroup_memory_files(proc, cgroup):
        try:
            text = limit.read_text().strip()
            used = int(usage.read_text().strip())
        except (OSError, ValueError):
            continue
        if text.isdigit() and int(text) < 2**60:
            avail = min(avail, max(0, int(text) - used))
        break
    room = _address_space_room(proc)
    return avail if room is None else min(avail, room)


def _cgroup_memory_files(proc: Path, cgroup: Path) -> list[tuple[Path, Path]]:
    """(limit, usage) files of this process's own memory cgroup, v2 then v1, then the root's."""
    own: list[tuple[Path, Path]] = []
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        rel = parts[2].lstrip("/")
        if parts[0] == "0" and parts[1] == "":
            own.append((cgroup / rel / "memory.max", cgroup / rel / "memory.current"))
        elif "memory" in parts[1].split(","):
            own.append((cgroup / "memory" / rel / "memory.limit_in_bytes",
                        cgroup / "memory" / rel / "memory.usage_in_bytes"))
    own += [(cgroup / "memory.max", cgroup / "memory.current"),
            (cgroup / "memory" / "memory.limit_in_bytes", cgroup / "memory" / "memory.usage_in_bytes")]
    return own


def _address_space_room(proc: Path) -> int | None:
    """How much more this process may map under ``ulimit -v`` (RLIMIT_AS), or None without a limit."""
    import resource

    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    try:
        with open(proc / "self" / "status", encoding="ascii") as f:
            mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mapped = 0
    return max(0, soft - mapped)


def check_host_memory(width: int, height: int, factor: int, batch: int, available: int | None = None) -> None:
    """Refuse, before anything is decoded, frames too large for this machine's memory (the model's working
    memory is bounded by tiling; these buffers are not)."""
    need = width * height * host_bytes_per_pixel(factor, batch)
    have = available if available is not None else available_memory()
    if have is not None and need > have:
        raise InputError(f"frames of {width}x{height} need about {need / 2**30:.1f} GiB of memory for a {factor}x run, "
                         f"and {have / 2**30:.1f} GiB is available: downscale the input first "
                         "(e.g. to 3840 wide), or use a machine with more memory")


def _gaps_text(src: Path, timing: InputTiming, allowed: bool) -> str:
    """The note on frames missing from a constant-rate input; an InputError unless ``allowed``."""
    gaps = timing.gaps
    assert timing.gap_rate is not None
    missing = sum(g.missing for g in gaps)
    first = gaps[0]
    where = (f"between {float(first.before):.2f} s and {float(first.after):.2f} s"
             + (f" and in {len(gaps) - 1} more place(s)" if len(gaps) > 1 else ""))
    what = f"{missing} frame(s) at {format_rate(timing.gap_rate)} fps are missing {where}"
    if not timing.damaged:  # dropped here and there, as variable-rate recordings do
        return (f"the input skips {missing} frame(s) of its {format_rate(timing.gap_rate)} fps grid ({where}): "
                "the output follows its timestamps")
    if not allowed:
        raise InputError(f"{src}: {what}: the file is damaged there (or was recorded with pauses); "
                         "--allow-gaps keeps the gap (the output then follows the input's timestamps)")
    return f"{what} (--allow-gaps: the output keeps the gap)"


def _check_reachable(path: Path, error: type[InputError] | type[OutputError], what: str) -> None:
    """A path behind a folder that cannot be entered fails here, as one line (input: exit 3, output: 4),
    before the checks below ask whether it is a folder; a path that does not exist (yet) passes."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as err:
        raise error(f"{what} {path}: {one_line(err)}") from None


def _check_no_codec_options(config: EnhanceConfig) -> None:
    given = [f"--{name}" for name in ("codec", "crf", "preset") if getattr(config, name) is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: for video output; frames are written as image files "
                         f"(their extension decides the format)")
