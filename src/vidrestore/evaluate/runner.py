"""Run the model and the baselines on exactly the same inputs and score them.

The model goes through :class:`vidrestore.engine.Engine`, the same code path as ``enhance``.
Clips are loaded and scored one at a time; outputs are streamed and scored as they come, so memory
holds one clip's source frames, not every method's outputs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from vidrestore import runtime
from vidrestore.config import RunOptions, parse_adapt
from vidrestore.engine import Engine, EngineConfig
from vidrestore.errors import ProcessingError, UsageError
from vidrestore.evaluate import flat_settings
from vidrestore.evaluate import metrics as M
from vidrestore.evaluate.baselines import BASELINES, run_baseline
from vidrestore.evaluate.protocols import (
    MODES,
    Plan,
    Target,
    check_settings,
    engine_settings,
    make_inputs,
    make_plan,
    window_targets,
)
from vidrestore.evaluate.sources import SourceClip, SourceEntry, discover, load_clip
from vidrestore.frames import quantize
from vidrestore.synth.blur import blur_to_length
from vidrestore.synth.scenes import validation_set
from vidrestore.train.adapt import adapt, auto_budget
from vidrestore.weights import locate, sha256_file

METHODS = ("model", "adapted", *BASELINES)  # adapted: the model fine-tuned on each clip's inputs (--adapt)
DEFAULT_METHODS = ("model", *BASELINES)
DEFAULT_SYNTHETIC_SIZE = (128, 128)

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalConfig:
    """One ``vidrestore eval`` run."""

    protocol: str = "joint"
    stride: int = 8
    exposure: int = 7
    methods: tuple[str, ...] = DEFAULT_METHODS
    run: RunOptions = RunOptions()  # how the model runs (weights, device, precision, batch, ensemble, tiles)
    model_mode: str | None = None  # None: the protocol's mode
    max_frames: int | None = None
    resize: tuple[int, int] | None = None  # (W, H)
    synthetic_count: int = 16
    seed: int = 1234
    save_frames: Path | None = None
    crop: int = 256
    # deblur protocol: blur each input by the scene's own motion (flow-upsampled sub-frames, REDS-style)
    # until its moving parts smear about this many pixels, within the exposure's frames; None: average them
    blur_length: float | None = None
    adapt: float | str | None = None  # the "adapted" method's budget per clip: seconds, or "auto"

    def __post_init__(self) -> None:
        check_settings(self.protocol, self.stride, self.exposure)
        if self.adapt is not None:
            object.__setattr__(self, "adapt", parse_adapt(str(self.adapt)))
        if self.blur_length is not None and (self.protocol != "deblur" or not self.blur_length > 0):
            raise UsageError("--blur-length: a length in pixels above 0, with --protocol deblur")
        if not self.methods:
            raise UsageError("--methods: choose at least one method")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UsageError(f"--methods: unknown {', '.join(unknown)} (choose from {', '.join(METHODS)})")
        if len(set(self.methods)) != len(self.methods):
            raise UsageError("--methods: a method is listed twice")
        if self.model_mode is not None and self.model_mode not in MODES:
            raise UsageError(f"--model-mode {self.model_mode!r}: expected one of {', '.join(MODES)}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames {self.max_frames}: must be at least 1")
        if self.synthetic_count < 1:
            raise UsageError(f"--count {self.synthetic_count}: must be at least 1")
        if self.crop < 16:
            raise UsageError(f"--crop {self.crop}: must be at least 16")
        if self.model_mode == "deblur" and self.protocol != "deblur":
            raise UsageError("--model-mode deblur adds no frames: use it with --protocol deblur")
        if ("adapted" in self.methods) != (self.adapt is not None):
            raise UsageError("--adapt and the method 'adapted' go together (--adapt SECONDS adds it)")
        if ("model" in self.methods or "adapted" in self.methods) and not 1 <= self.factor <= 16:
            raise UsageError(f"--stride {self.stride}: the model runs at 2x to 16x")

    @property
    def factor(self) -> int:
        return engine_settings(self.protocol, self.stride)[0]

    @property
    def mode(self) -> str:
        return self.model_mode or engine_settings(self.protocol, self.stride)[1]


@dataclass(frozen=True)
class PreparedClip:
    """A clip ready to score: the inputs every method sees, and the truth of each scored output."""

    name: str
    inputs: tuple[np.ndarray, ...]
    factor: int
    targets: tuple[Target, ...]
    truths: tuple[np.ndarray, ...]  # aligned with targets
    source_frames: int

    @property
    def num_outputs(self) -> int:
        return len(self.inputs) * self.factor


def prepare_source(clip: SourceClip, cfg: EvalConfig) -> tuple[PreparedClip, Plan]:
    plan = make_plan(cfg.protocol, len(clip.frames), cfg.stride, cfg.exposure)
    if cfg.blur_length is not None:
        inputs = []
        for inp in plan.inputs:
            window = [clip.frames[i] for i in inp.sources]
            blurred, _reached = blur_to_length(window, inp.centre - inp.sources[0], cfg.blur_length)
            inputs.append(blurred)
    else:
        inputs = make_inputs(plan, clip.frames)
    truths = tuple(clip.frames[t.source] for t in plan.targets)
    prepared = PreparedClip(clip.name, tuple(inputs), plan.factor, plan.targets, truths, len(clip.frames))
    return prepared, plan


def tensor_to_u8(x: torch.Tensor) -> np.ndarray:
    """[3,H,W] float in [0,1] -> HxWx3 uint8 (rounded; the form the baselines and metrics take)."""
    return quantize(x[None])[0]


def synthetic_clips(cfg: EvalConfig) -> Iterator[PreparedClip]:
    """The fixed-seed held-out synthetic set: each sample is a 4-frame clip F(i-1..i+2) whose key frame
    F(i) (and, for joint/interp, the frames between F(i) and F(i+1)) have exact ground truth."""
    w, h = cfg.resize or DEFAULT_SYNTHETIC_SIZE
    if cfg.protocol == "interp":
        exposure = 0.0  # sharp inputs
    elif cfg.exposure > cfg.stride:
        raise UsageError(f"--synthetic: --exposure {cfg.exposure} is longer than the frame interval "
                         f"(--stride {cfg.stride})")
    else:
        exposure = cfg.exposure / cfg.stride  # fraction of the input frame interval
    scene_factor = max(cfg.stride, 1)
    samples = validation_set(seed=cfg.seed, count=cfg.synthetic_count, height=h, width=w,
                             factor=scene_factor, exposure=exposure)
    factor = cfg.factor
    for k, sample in enumerate(samples):
        inputs = tuple(tensor_to_u8(sample.inputs[0, i]) for i in range(sample.inputs.shape[1]))
        with_inter = cfg.protocol != "deblur"
        targets = window_targets(factor, 1, with_inter)
        truths = [tensor_to_u8(sample.key[0])]
        if with_inter:
            truths += [tensor_to_u8(sample.inter[0, i]) for i in range(sample.inter.shape[1])]
        if len(truths) != len(targets):
            raise ProcessingError(f"synthetic sample {k}: {len(truths)} truths for {len(targets)} targets")
        yield PreparedClip(f"synthetic-{k:03d}", inputs, factor, targets, tuple(truths), len(inputs))


# ---------------------------------------------------------------- methods


class ModelMethod:
    """The network, set up by :func:`vidrestore.runtime.load` and run through the same Engine as ``enhance``.
    Loaded on first use."""

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        self._engines: dict[tuple[int, str], Engine] = {}
        self.adaptations: list[dict] = []
        self.runtime: runtime.Runtime | None = None
        self.weights_sha256: str | None = None

    def load(self) -> runtime.Runtime:
        """Resolve the device and precision and load the weights (once)."""
        if self.runtime is None:
            self.runtime = runtime.load(self.cfg.run)
            self.weights_sha256 = sha256_file(locate(self.runtime.label)[0])
        return self.runtime

    def engine(self, factor: int, mode: str) -> Engine:
        rt = self.load()
        key = (factor, mode)
        if key not in self._engines:
            self._engines[key] = Engine(rt, EngineConfig.of(factor, mode, self.cfg.run))
        return self._engines[key]

    def run(self, inputs: Sequence[np.ndarray], factor: int) -> Iterator[np.ndarray]:
        engine = self.engine(factor, self.cfg.mode)
        # eval clips are single shots: no scene cuts, so every interval is interpolated
        return iter(engine.process(list(inputs), cuts=[False] * len(inputs)))

    def run_adapted(self, inputs: Sequence[np.ndarray], factor: int) -> Iterator[np.ndarray]:
        """The network fine-tuned on this clip's own inputs first (:func:`vidrestore.train.adapt.adapt`), then run
        as ``run`` does; what the adaptation did is kept in ``adaptations``."""
        rt = self.load()
        budget = self.cfg.adapt
        if budget == "auto":
            budget = auto_budget(len(inputs) / 30.0)
        result = adapt(rt.network, list(inputs), self.cfg.mode, float(budget), rt.device,
                       threads=max(1, torch.get_num_threads()))
        self.adaptations.append({"used": result.used, "steps": result.steps, "seconds": round(result.seconds, 1),
                                 "base": result.base, "adapted": result.adapted})
        adapted = dataclasses.replace(rt, model=runtime.wrap(result.model, self.cfg.run, rt.device))
        engine = Engine(adapted, EngineConfig.of(factor, self.cfg.mode, self.cfg.run))
        return iter(engine.process(list(inputs), cuts=[False] * len(inputs)))


def method_runner(name: str, cfg: EvalConfig,
                  model: ModelMethod | None) -> Callable[[Sequence[np.ndarray], int], Iterator[np.ndarray]]:
    if name in ("model", "adapted"):
        if model is None:
            raise UsageError("the model method needs a model")
        return model.run if name == "model" else model.run_adapted
    return lambda inputs, factor: run_baseline(name, inputs, factor)


# ---------------------------------------------------------------- scoring


@dataclass
class MethodResult:
    clips: dict[str, M.ClipScores] = field(default_factory=dict)
    seconds: float = 0.0
    outputs: int = 0

    def mean(self) -> M.ClipScores:
        return M.mean_over_clips(list(self.clips.values()))


@dataclass
class EvalReport:
    settings: dict
    methods: dict[str, MethodResult]
    clips: list[dict]
    saved: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        def num(v: float) -> float | None:
            return None if (isinstance(v, float) and math.isnan(v)) else v

        return {
            "settings": self.settings,
            "clips": self.clips,
            "methods": {
                name: {
                    "mean": res.mean().to_json(),
                    "clips": {clip: sc.to_json() for clip, sc in res.clips.items()},
                    "seconds": round(res.seconds, 4),
                    "output_fps": num(round(res.outputs / res.seconds, 3)) if res.seconds > 0 else None,
                }
                for name, res in self.methods.items()
            },
            "saved_frames": self.saved,
        }


def _timed(it: Iterator[np.ndarray], clock: list[float]) -> Iterator[np.ndarray]:
    """Yield from ``it`` adding the time spent inside it to clock[0]."""
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            clock[0] += time.perf_counter() - t0
            return
        clock[0] += time.perf_counter() - t0
        yield item


def score_method(
    run: Callable[[Sequence[np.ndarray], int], Iterator[np.ndarray]],
    clip: PreparedClip,
    keep: Iterable[int] = (),
    keys_given: bool = False,
) -> tuple[M.ClipScores, float, dict[int, np.ndarray]]:
    """Stream one method's outputs on a clip, score the targets; returns the scores, the seconds spent
    in the method, and the outputs at the indices in ``keep``. ``keys_given``: the key frames are the sharp
    inputs themselves (interp protocol), so "all" is the frames the method made."""
    by_output = {t.output: (t, truth) for t, truth in zip(clip.targets, clip.truths)}
    keep = set(keep)
    kept: dict[int, np.ndarray] = {}
    scores: list[M.FrameScore] = []
    clock = [0.0]
    count = 0
    h, w = clip.inputs[0].shape[:2]
    for idx, frame in enumerate(_timed(iter(run(clip.inputs, clip.factor)), clock)):
        if frame.shape != (h, w, 3):
            raise ProcessingError(f"{clip.name}: output {idx} is {frame.shape}, expected {(h, w, 3)}")
        if idx in by_output:
            target, truth = by_output[idx]
            scores.append(M.score_frame(frame, truth, target.is_key))
        if idx in keep:
            kept[idx] = np.array(frame, copy=True)
        count += 1
    if count != clip.num_outputs:
        raise ProcessingError(f"{clip.name}: a method gave {count} frames, expected {clip.num_outputs}")
    return M.ClipScores.from_frames(scores, keys_given), clock[0], kept


def panel_targets(clip: PreparedClip) -> list[Target]:
    """The frames shown by --save-frames: a key frame near the middle of the clip and the
    intermediate frame halfway to the next input."""
    keys = [t for t in clip.targets if t.is_key]
    inters = [t for t in clip.targets if not t.is_key]
    if inters:
        j = sorted({t.input_index for t in inters})[len({t.input_index for t in inters}) // 2]
        steps = [t for t in inters if t.input_index == j]
        mid = steps[len(steps) // 2]
        key = next((t for t in keys if t.input_index == j), None)
        return [t for t in (key, mid) if t is not None]
    return [keys[len(keys) // 2]] if keys else []


def save_panels(out_dir: Path, clip: PreparedClip, kept: dict[str, dict[int, np.ndarray]], crop: int) -> list[str]:
    from vidrestore.evaluate.panels import compose, pick_crop, safe_name, save_panel

    saved = []
    truth_of = {t.output: truth for t, truth in zip(clip.targets, clip.truths)}
    for t in panel_targets(clip):
        nearest = clip.inputs[min(t.input_index + (1 if t.time > 0.5 else 0), len(clip.inputs) - 1)]
        truth = truth_of[t.output]
        box = pick_crop(truth, nearest, crop)
        panels = [("input", clip.inputs[t.input_index])]
        panels += [(name, frames[t.output]) for name, frames in kept.items() if t.output in frames]
        panels.append(("ground truth", truth))
        kind = "key" if t.is_key else f"t{t.step}of{clip.factor}"
        path = out_dir / f"{safe_name(clip.name)}_in{t.input_index:04d}_{kind}.png"
        save_panel(path, compose(panels, box))
        saved.append(str(path))
    return saved


def iter_source_clips(source: Path, cfg: EvalConfig) -> Iterator[tuple[PreparedClip, Plan]]:
    """The clips of SOURCE, loaded one at a time (SOURCE itself is checked at once)."""
    entries: list[SourceEntry] = discover(source)

    def load() -> Iterator[tuple[PreparedClip, Plan]]:
        for entry in entries:
            yield prepare_source(load_clip(entry, cfg.max_frames, cfg.resize), cfg)

    return load()


def evaluate(
    clips: Iterable[PreparedClip],
    cfg: EvalConfig,
    settings: dict | None = None,
    log: Log | None = None,
) -> EvalReport:
    """Score every method of ``cfg`` on every clip."""
    model = ModelMethod(cfg) if {"model", "adapted"} & set(cfg.methods) else None
    if model is not None:
        model.load()  # fail on missing weights or a bad device before any work
    runners = {name: method_runner(name, cfg, model) for name in cfg.methods}
    results = {name: MethodResult() for name in cfg.methods}
    clip_info: list[dict] = []
    saved: list[str] = []
    for clip in clips:
        h, w = clip.inputs[0].shape[:2]
        clip_info.append({
            "name": clip.name, "width": w, "height": h, "source_frames": clip.source_frames,
            "inputs": len(clip.inputs), "scored_key": sum(t.is_key for t in clip.targets),
            "scored_inter": sum(not t.is_key for t in clip.targets),
        })
        keep = [t.output for t in panel_targets(clip)] if cfg.save_frames is not None else []
        kept: dict[str, dict[int, np.ndarray]] = {}
        for name, run in runners.items():
            if log:
                log(f"{clip.name}: {name}")
            scores, seconds, frames = score_method(run, clip, keep, keys_given=cfg.protocol == "interp")
            res = results[name]
            res.clips[clip.name] = scores
            res.seconds += seconds
            res.outputs += clip.num_outputs
            kept[name] = frames
        if cfg.save_frames is not None:
            saved += save_panels(Path(cfg.save_frames), clip, kept, cfg.crop)
    if not clip_info:
        raise UsageError("nothing to evaluate")
    all_settings = dict(settings or {})
    all_settings.update(run_settings(cfg))
    if model is not None and model.runtime is not None:
        all_settings["device"] = str(model.runtime.device)
        all_settings["dtype"] = model.runtime.dtype_name
        all_settings["weights"] = model.runtime.label
        all_settings["weights_sha256"] = model.weights_sha256
        if model.adaptations:
            all_settings["adaptations"] = model.adaptations
    return EvalReport(all_settings, results, clip_info, saved)


def run_settings(cfg: EvalConfig) -> dict:
    d = flat_settings(cfg)
    d["methods"] = list(cfg.methods)
    d["resize"] = f"{cfg.resize[0]}x{cfg.resize[1]}" if cfg.resize else None
    d["save_frames"] = str(cfg.save_frames) if cfg.save_frames is not None else None
    d["factor"] = cfg.factor
    d["mode"] = cfg.mode
    d["metrics"] = {
        "psnr": "10*log10(1/MSE), RGB in [0,1], MSE over all pixels and channels of a frame; identical frames = "
                f"{M.PSNR_CAP_DB:g} dB",
        "ssim": "Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, L 1, per channel on the valid region, averaged",
        "averaging": "per frame, mean over a clip's frames, mean over clips",
    }
    return d


__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "EvalConfig",
    "EvalReport",
    "MethodResult",
    "ModelMethod",
    "PreparedClip",
    "evaluate",
    "iter_source_clips",
    "prepare_source",
    "score_method",
    "synthetic_clips",
]
