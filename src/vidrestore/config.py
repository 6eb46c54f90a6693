"""What a run was asked to do, as frozen, validated dataclasses.

:class:`RunOptions` is what every command that runs the model shares (weights, device, precision, batch,
ensemble, tiles, memory); :class:`EnhanceConfig` is one ``enhance`` job. Nothing heavy is imported here:
the CLI builds these before torch or PyAV are loaded, so that bad arguments fail instantly with a
:class:`~vidrestore.errors.UsageError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from vidrestore.errors import UsageError

Mode = Literal["joint", "deblur", "interp"]
MODES: tuple[str, ...] = ("joint", "deblur", "interp")

MIN_FACTOR = 1
MAX_FACTOR = 16
DEFAULT_FACTOR = 2
DEFAULT_CODEC = "libx264"  # where the container has no default of its own (vidrestore.io.formats.default_codec)
# --codec by output container (muxer name): what `enhance --help` lists; webm takes the first this FFmpeg has
CONTAINER_CODECS: dict[str, tuple[str, ...]] = {
    "mp4": ("libx264",), "mov": ("libx264",), "matroska": ("libx264",),
    "webm": ("libsvtav1", "libvpx-vp9", "libaom-av1"),
}
# image sequences: --fps when the user gives none (a note says so)
DEFAULT_SEQUENCE_RATE = Fraction(30000, 1001)

# Scene-cut score: geometric mean of (a) the mean absolute difference of 64x36 grey thumbnails and
# (b) half the L1 distance of their 32-bin grey histograms, both in [0, 1]. On real footage ordinary
# motion scores below ~0.09 and hard cuts above ~0.25.
DEFAULT_SCENE_THRESHOLD = 0.15
DEFAULT_TILE_OVERLAP = 32


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def check_precision(precision: str) -> str:
    """The one check of a precision name (run options and training recipes)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision

# --ensemble: passes over mirrored copies of each window (vidrestore.model.ensemble.FLIPS)
ENSEMBLE_PASSES = (1, 2, 4)
ENSEMBLE_HELP = ("Average the model over mirrored copies of each window: 1 (off), 2 (left-right) or 4 (and "
                 "up-down) passes, at about 2x or 4x the model's time (with the shipped weights 4 passes gain 0.02 to "
                 "0.06 dB on the model card's checks).")


def format_rate(rate: Fraction) -> str:
    """A rate as its exact fraction: ``24``, ``30000/1001``."""
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def parse_rate(text: str | Fraction | int | float) -> Fraction:
    """An exact frame rate from ``24``, ``30000/1001`` or a decimal such as ``23.976`` (-> 24000/1001:
    a decimal within 0.01% of an NTSC rate n*1000/1001 is taken as that rate). UsageError otherwise."""
    if isinstance(text, Fraction):
        rate = text
    else:
        raw = str(text).strip()
        try:
            rate = Fraction(raw)
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"--fps {raw!r}: expected a rate such as 24, 30000/1001 or 23.976") from None
        if rate.denominator != 1 and "/" not in raw:  # a decimal: the NTSC rate it stands for, if any
            ntsc = Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001)
            if ntsc > 0 and abs(rate - ntsc) <= ntsc * Fraction(1, 10000):
                rate = ntsc
    if not 0 < rate <= 1000:
        raise UsageError(f"--fps {text}: must be above 0 and at most 1000")
    return rate


def check_threads(threads: int | None) -> None:
    """``--threads`` must be a whole number >= 1 (None: the cores available, vidrestore.threads)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"--threads {threads!r}: must be a whole number >= 1")


def check_ensemble(ensemble: int) -> None:
    """``--ensemble`` must be one of ``ENSEMBLE_PASSES``."""
    if ensemble not in ENSEMBLE_PASSES:
        raise UsageError(f"--ensemble {ensemble}: choose {', '.join(map(str, ENSEMBLE_PASSES))}")


def effective_factor(mode: str, factor: int) -> int:
    """The frame-rate multiplier actually used: deblur mode never adds frames."""
    return 1 if mode == "deblur" else int(factor)


def check_factor_mode(factor: int, mode: str) -> None:
    """The checks on ``--fps-x`` and ``--mode`` of every command that runs the model."""
    if isinstance(factor, bool) or not isinstance(factor, int):
        raise UsageError(f"--fps-x must be a whole number from {MIN_FACTOR} to {MAX_FACTOR}, got {factor!r}")
    if not MIN_FACTOR <= factor <= MAX_FACTOR:
        raise UsageError(f"--fps-x {factor} is out of range: choose {MIN_FACTOR} to {MAX_FACTOR}")
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")


@dataclass(frozen=True)
class RunOptions:
    """How to run the model, shared by ``enhance``, ``eval`` and ``bench`` (see :mod:`vidrestore.runtime`)."""

    weights: str | None = None  # None: vidrestore.weights.DEFAULT_WEIGHTS
    device: str = "auto"
    precision: str = "auto"
    batch: int = 1
    ensemble: int = 1  # passes over mirrored copies of each window, averaged (1, 2 or 4)
    tile: int | None = None
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    gpu_memory_gb: float | None = None  # CUDA memory per forward; None: auto, 0: no limit (engine)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.batch < 1:
            raise UsageError(f"--batch {self.batch}: must be at least 1")
        check_ensemble(self.ensemble)
        if self.tile is not None and self.tile < 16:
            raise UsageError(f"--tile {self.tile}: must be at least 16 pixels")
        if self.tile_overlap < 0:
            raise UsageError(f"tile overlap {self.tile_overlap}: must not be negative")
        if self.tile is not None and self.tile <= self.tile_overlap:
            raise UsageError(f"--tile {self.tile}: must be larger than the tile overlap ({self.tile_overlap})")
        if self.gpu_memory_gb is not None and not self.gpu_memory_gb >= 0:
            raise UsageError(f"--gpu-memory {self.gpu_memory_gb}: must be a number of GB >= 0")

    def cli_args(self) -> list[str]:
        """These options as ``enhance`` takes them on its command line (those that differ from the defaults)."""
        out: list[str] = []
        for name, flag in (("weights", "--weights"), ("device", "--device"), ("precision", "--precision"),
                           ("batch", "--batch"), ("ensemble", "--ensemble"), ("tile", "--tile"),
                           ("tile_overlap", "--tile-overlap"), ("gpu_memory_gb", "--gpu-memory")):
            value = getattr(self, name)
            if value != getattr(RunOptions, name):
                out += [flag, str(value)]
        return out


@dataclass(frozen=True)
class EnhanceConfig:
    """One ``vidrestore enhance`` run. Construction validates every field."""

    input: Path
    output: Path
    factor: int = DEFAULT_FACTOR
    mode: Mode = "joint"
    run: RunOptions = RunOptions()
    codec: str | None = None  # None: the output container's default (io.formats.default_codec)
    crf: int | None = None  # None: the codec's default quality (see io.formats)
    preset: str | None = None
    scene_threshold: float = DEFAULT_SCENE_THRESHOLD
    scene_detect: bool = True
    overwrite: bool = False
    # frames missing from a constant-rate input, or that cannot be decoded: go on without them (the output
    # keeps the gap, or on an unbroken grid a neighbouring frame stands in), else an InputError
    allow_gaps: bool = False
    fps: Fraction | None = None  # image-sequence input: its frame rate (None: DEFAULT_SEQUENCE_RATE, with a note)
    threads: int | None = None  # CPU threads for the model, OpenCV and the codecs (None: the cores available)
    # fine-tune the network on the input's own frames first: seconds, or "auto" (vidrestore.train.adapt)
    adapt: float | str | None = None
    save_adapted: Path | None = None  # write the adapted network here (a .safetensors file)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "output", Path(self.output))
        if self.adapt is not None:
            object.__setattr__(self, "adapt", parse_adapt(str(self.adapt)))
        if self.save_adapted is not None:
            object.__setattr__(self, "save_adapted", Path(self.save_adapted))
            if self.adapt is None:
                raise UsageError("--save-adapted needs --adapt")
            if self.save_adapted.suffix.lower() != ".safetensors":
                raise UsageError(f"--save-adapted {self.save_adapted}: the file must end in .safetensors")
        if self.fps is not None:
            object.__setattr__(self, "fps", parse_rate(self.fps))
        check_threads(self.threads)
        check_factor_mode(self.factor, self.mode)
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise UsageError(f"--crf {self.crf}: must be between 0 and 63")
        if not 0.0 < self.scene_threshold <= 1.0:
            raise UsageError(f"--scene-threshold {self.scene_threshold}: must be in (0, 1]")
        if self.codec is not None and not self.codec.strip():
            raise UsageError("--codec must not be empty")

    @property
    def effective_factor(self) -> int:
        """The frame-rate multiplier actually used: deblur mode never adds frames."""
        return effective_factor(self.mode, self.factor)

    @property
    def effective_scene_threshold(self) -> float | None:
        """The scene-cut threshold, or None when scene detection is off."""
        return self.scene_threshold if self.scene_detect else None


@dataclass(frozen=True)
class ScaleOptions:
    """How a run is spread: ``workers`` (None: one per GPU, or one), ``chunks`` per video (None: auto; 1:
    never split), ``ray``: None (a local Ray, started when there is more than one worker), "auto" or the
    address of a running cluster."""

    workers: int | None = None
    chunks: int | None = None
    ray: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers {self.workers}: must be at least 1")
        if self.chunks is not None and self.chunks < 1:
            raise UsageError(f"--chunks {self.chunks}: must be 'auto' or at least 1")


ADAPT_HELP = ("Fine-tune the network on this video's own frames first, for SECONDS or 'auto' (6 s per second of "
              "video, 30-120 s); it is used only where it beats the network on held-out frames of the video.")


def parse_adapt(text: str | None) -> float | str | None:
    """``--adapt SECONDS|auto``: None (off), "auto", or seconds above 0."""
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        seconds = float(text)
    except ValueError:
        raise UsageError(f"--adapt {text!r}: expected a number of seconds or auto") from None
    if not 0 < seconds <= 3600:
        raise UsageError(f"--adapt {text}: seconds above 0 and at most 3600")
    return seconds
