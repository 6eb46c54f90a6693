"""``vidrestore bench``: engine and end-to-end throughput, memory, and ffmpeg minterpolate for scale.

It times the code ``enhance`` runs, not a copy of it. Parts of one run:

(a) engine: the model set up by :func:`vidrestore.runtime.load` (device, precision, autocast, the flip
    ensemble), run by :class:`vidrestore.engine.Engine` on uint8 frames in and out at the chosen size,
    factor, mode and batch (batching, feature cache, padding, tiles, transfers), after a warm-up, with
    the device synchronised before every clock reading. Parameter count and multiply-accumulates per
    output frame, counted with ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2) on one
    window of the engine's tiles: (encoder on one frame + one window's restore) / K.
(b) pipeline: :func:`vidrestore.pipeline.run` (``enhance``) in-process on a generated clip of the same
    size with the same loaded model (decode + model + encode), and where the time goes: decode (the
    pipeline's reader), model (the engine on the decoded frames) and encode (the pipeline's writer,
    N*K frames) each timed alone on the same clip.
(c) memory: peak CUDA memory allocated per part (CUDA only) and the process's peak RSS; during the
    pipeline run the current RSS is sampled, and the peaks of the run's first and second halves are
    compared (memory flat in the video's length: the second half holds no more than the first).
(d) ffmpeg ``minterpolate`` (mci) on the same clip at the same factor via PyAV (decode + filter +
    encode with the same codec), and the ratio of our pipeline time to its time.
(e) the hardware and software it ran on.
(h) the headline, first, while nothing else runs (:mod:`vidrestore.evaluate.headline`): ``vidrestore enhance``
    against the ``ffmpeg`` minterpolate command as whole processes on one clip of at least 10 s (``input``, or
    a generated one), alternating, with medians and spread. (a)-(d) are the warm, in-process breakdown.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vidrestore import pipeline, runtime, threads
from vidrestore.config import DEFAULT_TILE_OVERLAP, EnhanceConfig, RunOptions, check_factor_mode, effective_factor
from vidrestore.engine import Engine, EngineConfig
from vidrestore.errors import UsageError
from vidrestore.evaluate import flat_settings
from vidrestore.evaluate import headline as hl
from vidrestore.evaluate.baselines import minterpolate_file
from vidrestore.evaluate.machine import RssSampler, hardware_info, peak_rss_mb
from vidrestore.io import files
from vidrestore.io import writer as w
from vidrestore.io.formats import codec_defaults
from vidrestore.io.probe import probe
from vidrestore.io.reader import FrameReader
from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorFlows, build_prior_model
from vidrestore.synth.pan import CLIP_RATE, moving_texture, texture_pan, write_clip
from vidrestore.plan import plan
from vidrestore.runtime import Runtime
from vidrestore.tiler import padded_size, tile_grid

# --size names: the flow-prior network's sizes
SIZES = tuple(PRIOR_CONFIGS)
Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    width: int = 1280
    height: int = 720
    factor: int = 2
    mode: str = "joint"
    run: RunOptions = RunOptions()  # run.weights None with size None: the default weights
    size: str | None = None  # a PRIOR_CONFIGS name: random weights (fine for speed)
    frames: int = 32  # input frames timed (engine) and length of the generated clip (pipeline)
    warmup: int = 4  # input frames run before timing
    codec: str = "libx264"
    pipeline: bool = True
    minterpolate: bool = True
    seed: int = 0
    headline: bool = True
    input: Path | None = None  # the headline's clip (default: a generated 10 s clip of the bench's size)
    rounds: int = 3  # headline: runs of each command, alternating
    headline_seconds: float = 10.0  # length of the generated headline clip
    ffmpeg: str | None = None  # the ffmpeg command (default: ffmpeg on PATH)
    threads: int | None = None  # --threads given to the headline's enhance

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise UsageError(f"--rounds {self.rounds}: must be at least 1")
        if not self.headline_seconds > 0:
            raise UsageError(f"--headline-seconds {self.headline_seconds}: must be above 0")
        if self.width < 16 or self.height < 16:
            raise UsageError(f"--resolution {self.width}x{self.height}: at least 16x16")
        if self.width % 2 or self.height % 2:
            raise UsageError(f"--resolution {self.width}x{self.height}: width and height must be even "
                             "(for the encoder)")
        check_factor_mode(self.factor, self.mode)
        if self.frames < 2:
            raise UsageError(f"--frames {self.frames}: must be at least 2")
        if self.warmup < 0:
            raise UsageError(f"--warmup {self.warmup}: must not be negative")
        if self.run.weights is not None and self.size is not None:
            raise UsageError("give --weights or --size, not both")
        if self.size is not None and self.size not in SIZES:
            raise UsageError(f"--size {self.size!r}: expected one of {', '.join(SIZES)}")

    @property
    def effective_factor(self) -> int:
        return effective_factor(self.mode, self.factor)


# ---------------------------------------------------------------- helpers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _cuda_peak_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


# ---------------------------------------------------------------- (a) engine


def load_bench_runtime(cfg: BenchConfig) -> Runtime:
    """The model as ``enhance`` sets it up: random weights of a named config (``size``), or loaded weights."""
    model = None
    if cfg.size is not None:
        torch.manual_seed(cfg.seed)
        model = build_prior_model(cfg.size).eval()
    return runtime.load(cfg.run, model=model)


def count_macs(model: torch.nn.Module, height: int, width: int, factor: int, mode: str, device: torch.device,
               tile: int | None = None, tile_overlap: int = DEFAULT_TILE_OVERLAP) -> dict[str, float]:
    """Multiply-accumulates of one input frame's work at this size: the encoder on one frame plus one
    window's restore (K-1 new frames, plus the key frame unless interp), per output frame = / K.
    With ``tile``, one tile (with its overlap) is counted and multiplied by the tiles per frame."""
    mult = int(getattr(model.config, "multiple", 8))
    hp, wp = padded_size(height, width, mult)
    tiles = tile_grid(hp, wp, tile, tile_overlap, mult)
    n_tiles = len(tiles)
    x = torch.rand(1, 3, tiles[0].h, tiles[0].w, device=device, dtype=runtime.param_dtype(model))
    k = effective_factor(mode, factor)
    times = torch.arange(1, k, device=device, dtype=torch.float32) / k
    with torch.inference_mode():
        feats = model.encode(x)
        with FlopCounterMode(display=False) as enc_counter:
            model.encode(x)
        prior = PriorFlows.zero(*x.shape[-2:], device)
        with FlopCounterMode(display=False) as res_counter:
            model.restore([x] * 4, [feats] * 4, times, prior, with_key=(mode != "interp"), sharp=(mode == "interp"))
    enc = n_tiles * enc_counter.get_total_flops() / 2
    res = n_tiles * res_counter.get_total_flops() / 2
    return {
        "encode_gmacs_per_frame": enc / 1e9,
        "restore_gmacs_per_window": res / 1e9,
        "gmacs_per_input_frame": (enc + res) / 1e9,
        "gmacs_per_output_frame": (enc + res) / k / 1e9,
        "padded_size": f"{wp}x{hp}",
        "tiles_per_frame": n_tiles,
    }


def job_threads(cfg: BenchConfig, device: torch.device) -> int:
    """torch's threads for the bench's job, as enhance sets them (:func:`vidrestore.pipeline.run`)."""
    return threads.set_network_threads(threads.ensure(threads.resolve(cfg.threads)), cfg.mode, device.type)


def time_engine(rt: Runtime, cfg: BenchConfig, frames: list[np.ndarray] | None = None) -> dict[str, Any]:
    """The model through :class:`~vidrestore.engine.Engine`: uint8 frames in and out, as ``enhance`` runs it."""
    engine = Engine(rt, EngineConfig.of(cfg.factor, cfg.mode, cfg.run, scene_threshold=None))
    job_threads(cfg, rt.device)
    if frames is None:
        frames = list(moving_texture(cfg.width, cfg.height, cfg.frames, cfg.seed))
    if cfg.warmup:
        warm = frames[: max(2, min(cfg.warmup, len(frames)))]
        for _ in engine.process(warm, cuts=[False] * len(warm)):
            pass
    synchronize(rt.device)
    t0 = time.perf_counter()
    outputs = 0
    for _ in engine.process(frames, cuts=[False] * len(frames)):
        outputs += 1
    synchronize(rt.device)
    dt = time.perf_counter() - t0
    return {
        "input_frames": len(frames),
        "output_frames": outputs,
        "seconds": dt,
        "ms_per_input_frame": 1e3 * dt / len(frames),
        "output_fps": outputs / dt,
        "tile": engine.stats.planned_tile if engine.stats.planned_tile is not None else cfg.run.tile,
        "items_per_forward": engine.stats.planned_batch or cfg.run.batch,
        "encoded_items": engine.stats.encoded_frames,  # frame tiles through the encoder (each once)
        "forward_calls": engine.stats.forward_calls,
    }


# ---------------------------------------------------------------- (b) pipeline


def _enhance_config(clip: Path, output: Path, cfg: BenchConfig) -> EnhanceConfig:
    return EnhanceConfig(input=clip, output=output, factor=cfg.factor, mode=cfg.mode, run=cfg.run,
                         codec=cfg.codec, scene_detect=False, overwrite=True)


def run_pipeline(clip: Path, output: Path, cfg: BenchConfig, rt: Runtime) -> dict[str, Any]:
    """``enhance`` in-process on ``clip``, with the model already loaded."""
    t0 = time.perf_counter()
    summary = pipeline.run(_enhance_config(clip, output, cfg), loaded=rt)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "summary": summary}


def time_decode(clip: Path) -> tuple[float, list[np.ndarray]]:
    """Decode the clip alone with the pipeline's reader; returns the seconds and the frames."""
    info = probe(clip)
    t0 = time.perf_counter()
    with FrameReader(info) as reader:
        frames = [d.rgb for d in reader]
    return time.perf_counter() - t0, frames


def time_encode(clip: Path, output: Path, cfg: BenchConfig) -> float:
    """Encode N*K frames alone with the pipeline's writer and its output settings (codec, pixel
    format, rate, time base) for this clip; the frames continue the clip's pan at the output rate."""
    p = plan(_enhance_config(clip, output, cfg))
    k = p.factor
    step = Fraction(1) / (p.rate_out * p.time_base_out)
    if step.denominator != 1:
        raise UsageError(f"{clip}: output rate {p.rate_out} does not fit the time base {p.time_base_out}")
    count = cfg.frames * k
    at = texture_pan(cfg.width, cfg.height, 3.0 * cfg.frames, cfg.seed)
    spec = w.WriterSpec(target=output, temp=files.create_temp(output), format_name=p.format_name, codec=cfg.codec,
                        pix_fmt=p.pix_fmt, width=cfg.width, height=cfg.height, rate=p.rate_out,
                        time_base=p.time_base_out)
    writer = w.VideoWriter(spec)
    t0 = time.perf_counter()
    try:
        writer.start()
        for i in range(count):
            writer.write(at(3.0 * i / k), i * int(step), int(step))
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return time.perf_counter() - t0


# ---------------------------------------------------------------- the whole run


def run_headline(cfg: BenchConfig, say: Log) -> dict[str, Any]:
    """(h): both tools as commands on one clip, alternating; see :mod:`vidrestore.evaluate.headline`."""
    ffmpeg = hl.find_ffmpeg(cfg.ffmpeg)
    with tempfile.TemporaryDirectory(prefix="vidrestore-headline-") as tmp:
        tmpdir = Path(tmp)
        if cfg.input is not None:
            clip = cfg.input
        else:
            count = max(2, round(cfg.headline_seconds * CLIP_RATE))
            say(f"writing a {count}-frame {cfg.width}x{cfg.height} clip for the headline")
            clip = write_clip(tmpdir / "clip.mp4", cfg.width, cfg.height, count, cfg.codec, cfg.seed)
        info = probe(clip)
        k = cfg.effective_factor
        defaults = codec_defaults(cfg.codec)
        crf = defaults.quality if defaults.quality_option == "crf" else None
        ours = hl.enhance_command(clip, tmpdir / "ours.mp4", cfg.factor, cfg.mode, cfg.run, cfg.codec, cfg.threads)
        theirs = hl.minterpolate_command(clip, tmpdir / "minterpolate.mp4", k, Fraction(info.rate), cfg.codec,
                                         crf, defaults.preset, ffmpeg)
        result = hl.alternate(ours, theirs, cfg.rounds, say=say)
    result["clip"] = {"path": str(cfg.input) if cfg.input is not None else "generated (a panning texture)",
                      "resolution": f"{info.width}x{info.height}", "frames": info.frame_count, "rate": str(info.rate),
                      "seconds": info.duration}
    result["encoder"] = {"codec": cfg.codec, "crf": crf, "preset": defaults.preset}
    return result


def run_bench(cfg: BenchConfig, log: Log | None = None) -> dict[str, Any]:
    say = log or (lambda _msg: None)
    headline = None
    if cfg.headline and cfg.effective_factor > 1 and cfg.size is None:
        headline = run_headline(cfg, say)  # first: nothing else of the bench runs meanwhile
    say("loading the model")
    rt = load_bench_runtime(cfg)
    device = rt.device
    report: dict[str, Any] = {"settings": {**flat_settings(cfg), "resolution": f"{cfg.width}x{cfg.height}",
                                           "effective_factor": cfg.effective_factor, "dtype": rt.dtype_name}}
    job_threads(cfg, device)  # so that the report's torch threads are the job's
    report["hardware"] = hardware_info(device)
    if headline is not None:
        report["headline"] = headline
    elif cfg.headline:
        report["headline_note"] = ("no headline: " + ("random weights (--size) cannot run as a command"
                                                      if cfg.size is not None else "no frames to interpolate at 1x"))

    params = sum(p.numel() for p in rt.network.parameters())
    label = f"random {cfg.size}" if cfg.size is not None else rt.label
    model_part: dict[str, Any] = {"model": label, "config": rt.network.config.name, "parameters": params}
    _reset_cuda_peak(device)
    say("timing the engine")
    engine = time_engine(rt, cfg)
    model_part["cuda_peak_allocated_mb"] = _cuda_peak_mb(device)
    model_part["peak_rss_mb"] = peak_rss_mb()
    say("counting multiply-accumulates")  # on the tiles the engine ran
    model_part.update(count_macs(rt.model, cfg.height, cfg.width, cfg.factor, cfg.mode, device, engine["tile"],
                                 cfg.run.tile_overlap))
    model_part["engine"] = engine
    report["model"] = model_part

    if cfg.pipeline or cfg.minterpolate:
        with tempfile.TemporaryDirectory(prefix="vidrestore-bench-") as tmp:
            tmpdir = Path(tmp)
            say(f"writing a {cfg.frames}-frame {cfg.width}x{cfg.height} clip")
            clip = write_clip(tmpdir / "clip.mp4", cfg.width, cfg.height, cfg.frames, cfg.codec, cfg.seed)
            ours = None
            if cfg.pipeline:
                _reset_cuda_peak(device)
                say("running enhance on the clip")
                with RssSampler() as rss:
                    run = run_pipeline(clip, tmpdir / "out.mp4", cfg, rt)
                halves = rss.halves()
                summary = run["summary"]
                ours = run["seconds"]
                pipe: dict[str, Any] = {
                    "input_frames": summary.frames_in,
                    "output_frames": summary.frames_out,
                    "seconds": ours,
                    "output_fps": summary.frames_out / ours,
                    "ms_per_input_frame": 1e3 * ours / max(1, summary.frames_in),
                    "cuda_peak_allocated_mb": _cuda_peak_mb(device),
                    "peak_rss_mb": peak_rss_mb(),
                    "rss_mb_first_half": halves[0] if halves else None,
                    "rss_mb_second_half": halves[1] if halves else None,
                }
                say("timing decode, model and encode alone")
                decode_s, decoded = time_decode(clip)
                model_s = time_engine(rt, cfg, decoded)["seconds"]
                del decoded
                encode_s = time_encode(clip, tmpdir / "encode-only.mp4", cfg)
                pipe["stages_s"] = {"decode": decode_s, "model": model_s, "encode": encode_s}
                pipe["stages_note"] = ("each stage timed alone on the same clip; in enhance they run on "
                                       "separate threads and overlap, so they need not add up to its time")
                report["pipeline"] = pipe
            if cfg.minterpolate and cfg.effective_factor > 1:
                say("running ffmpeg minterpolate on the clip")
                mi = minterpolate_file(clip, tmpdir / "minterpolate.mp4", cfg.effective_factor, cfg.codec)
                if ours is not None:
                    mi["time_ratio_ours_over_minterpolate"] = ours / mi["seconds"] if mi["seconds"] > 0 else None
                report["minterpolate"] = mi
    report["peak_rss_mb"] = peak_rss_mb()
    return report


__all__ = [
    "BenchConfig",
    "count_macs",
    "load_bench_runtime",
    "run_bench",
    "time_engine",
]
