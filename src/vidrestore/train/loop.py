"""The training loop: data mix, AdamW with warmup + cosine, autocast, checkpoints, time budget, validation.

A run lives in one folder (``cfg.run.out``): ``ckpt/`` (resumable state, never shipped),
``log.jsonl`` (one JSON record per log/validation line) and the exported ``final.safetensors``
(written with ``vidrestore.weights.save_weights`` whenever the run stops). A run is meant to be
done in chunks: each invocation with ``resume=True`` continues from the checkpoint until the schedule's
last step is reached or its ``minutes`` budget is spent, then checkpoints and exports. What a run is asked
to do is a :class:`~vidrestore.train.config.TrainConfig`; a chain of runs is a recipe
(:mod:`vidrestore.train.recipe`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from vidrestore.errors import Interrupted, ProcessingError, UsageError
from vidrestore.model.layers import window_features
from vidrestore.model.network import VidRestoreNet, config_to_json
from vidrestore.runtime import autocast, resolve_device, resolve_dtype
from vidrestore.synth.scenes import Sample, default_times, render_batch, validation_set
from vidrestore.synth.textures import TextureBank
from vidrestore.train.checkpoint import find_checkpoint, load_checkpoint, read_state, save_checkpoint
from vidrestore.train.config import SOURCES, TrainConfig
from vidrestore.train.data import ClipSampler, VideoSampler
from vidrestore.train.losses import psnr, restoration_loss
from vidrestore.train.teacher import with_teacher_flows
from vidrestore.weights import load_model, save_weights


@dataclass(frozen=True)
class TrainResult:
    step: int
    seconds: float  # training time over all chunks
    finished: bool  # the schedule's last step (``max_steps`` or ``steps``) reached
    export_path: str
    val: dict[str, float]


class RunLog:
    """Log records: a line on stdout (via ``echo``) and a JSON line in ``log.jsonl``."""

    def __init__(self, path: Path, echo: Callable[[str], None]):
        self.path = path
        self.echo = echo

    def __call__(self, kind: str, text: str, **record: Any) -> None:
        self.echo(text)
        record = {"kind": kind, "time": round(time.time(), 3), **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def _make_generator(device: torch.device, seed: int) -> torch.Generator:
    try:
        g = torch.Generator(device=device)
    except RuntimeError:  # devices without their own generator
        g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def _fit(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop the last two dims to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    nh, nw = h // multiple * multiple, w // multiple * multiple
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    return x[..., y0 : y0 + nh, x0 : x0 + nw]


class Validator:
    """PSNR of the model on the fixed-seed synthetic validation set, and of the blend baseline."""

    SET = "synthetic seed 1234, {count} x {size}px, 8x, exposure 7/8"

    def __init__(self, count: int, size: int, multiple: int, device: torch.device, dtype: torch.dtype):
        samples = validation_set(count=count, height=size, width=size, factor=8, exposure=7 / 8)
        self.samples = [
            Sample(_fit(s.inputs, multiple), _fit(s.key, multiple), _fit(s.inter, multiple), s.times).to(device)
            for s in samples
        ]
        self.device, self.dtype = device, dtype
        self.description = self.SET.format(count=count, size=size)
        self.baseline = self._baseline()

    def _baseline(self) -> dict[str, float]:
        key, inter = [], []
        for s in self.samples:
            f0, f1 = s.inputs[:, 1], s.inputs[:, 2]
            t = s.times.view(1, -1, 1, 1, 1)
            blend = (1 - t) * f0[:, None] + t * f1[:, None]
            key.append(psnr(f0, s.key))
            inter.append(psnr(blend, s.inter).flatten())
        return {"key_psnr": float(torch.cat(key).mean()), "inter_psnr": float(torch.cat(inter).mean())}

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        key, inter = [], []
        for s in self.samples:
            with autocast(self.device, self.dtype):
                k, it = model(s.inputs, s.times)
            key.append(psnr(k.float(), s.key))
            inter.append(psnr(it.float(), s.inter).flatten())
        model.train(was_training)
        return {"key_psnr": float(torch.cat(key).mean()), "inter_psnr": float(torch.cat(inter).mean())}


class DataMix:
    """Draws each batch from one source, chosen by the mix weights."""

    def __init__(self, cfg: TrainConfig, crop: int, device: torch.device, log: RunLog):
        data = cfg.data
        self.data, self.crop, self.device = data, crop, device
        self.with_flows = cfg.loss.flow_weight > 0
        self.clip_flows = cfg.loss.clip_flow_weight > 0
        self.weights = data.mix()
        self.textures = None
        if data.textures and self.weights["synthetic"] > 0:
            self.textures = TextureBank.from_paths(data.textures, device, skip_frames=data.holdout_frames)
            log("data", f"textures: {len(self.textures)} images from {', '.join(data.textures)}",
                textures=len(self.textures))
        self.scene = data.scene(crop)
        self.clips = self.videos = None
        if self.weights["clips"] > 0:
            self.clips = ClipSampler.from_dir(data.clips, data.clip_strides, scale=data.clip_scale,
                                              skip_frames=data.holdout_frames)
            log("data", f"clips: {len(self.clips.videos)} videos, {self.clips.frame_count} frames",
                clips=self.clips.frame_count)
        if self.weights["videos"] > 0:
            self.videos = VideoSampler.from_dir(data.videos, data.factor, scale=data.video_scale,
                                                skip_frames=data.holdout_frames)
            log("data", f"videos: {len(self.videos.videos)} videos, {self.videos.frame_count} frames",
                videos=self.videos.frame_count)
        names = [n for n in SOURCES if self.weights[n] > 0]
        self.names = names
        self.probs = torch.tensor([self.weights[n] for n in names], dtype=torch.float64)

    def next(self, g_cpu: torch.Generator, g_dev: torch.Generator) -> tuple[str, Sample]:
        data = self.data
        i = int(torch.multinomial(self.probs, 1, generator=g_cpu)) if len(self.names) > 1 else 0
        name = self.names[i]
        if name == "synthetic":
            if float(torch.rand(1, generator=g_cpu)) < data.random_t_prob:
                times = torch.sort(torch.rand(data.factor - 1, generator=g_cpu)).values.clamp(0.02, 0.98)
                times = times.to(self.device)
            else:
                times = default_times(data.factor, self.device)
            return name, render_batch(self.scene, data.batch, g_dev, self.device, self.textures, times=times,
                                      with_flows=self.with_flows)
        if name == "clips":
            sample = self.clips.sample(data.batch, self.crop, g_cpu, self.device)
            return name, with_teacher_flows(sample) if self.clip_flows else sample
        return name, self.videos.sample(data.batch, self.crop, g_cpu, self.device)


class _Run:
    """The state of one training run between steps: model, optimizer, scaler, generators and counters,
    and the checkpoint that holds them."""

    def __init__(self, cfg: TrainConfig, model: VidRestoreNet, device: torch.device, dtype: torch.dtype,
                 trainable: list[torch.nn.Parameter]):
        self.cfg, self.model, self.device, self.dtype = cfg, model, device, dtype
        self.out = Path(cfg.run.out)
        sched = cfg.schedule
        decay, no_decay = [], []
        for p in trainable:
            (decay if p.dim() >= 2 else no_decay).append(p)
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": sched.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=sched.lr, betas=(0.9, 0.99),
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        self.g_cpu = _make_generator(torch.device("cpu"), cfg.run.seed)
        self.g_dev = _make_generator(device, cfg.run.seed + 1)
        self.step, self.seconds = 0, 0.0
        self.last_val: dict[str, float] = {}
        self.last_val_step = 0

    def resume(self, ckpt: Path) -> None:
        """Check that the checkpoint in ``ckpt`` is this run's, and restore it."""
        cfg, model = self.cfg, self.model
        peek = read_state(ckpt)
        saved_config = peek.get("model_config")
        if peek.get("model") != cfg.model.size or (saved_config and saved_config != config_to_json(model.config)):
            raise UsageError(f"--resume: the checkpoint in {self.out} is for model {peek.get('model')!r}, "
                             f"not {cfg.model.size!r}" + (" with these tensors" if saved_config else ""))
        saved = peek.get("config", {})
        saved_only = tuple((saved.get("model") if isinstance(saved.get("model"), dict) else saved).get("train_only") or ())
        if saved_only != tuple(cfg.model.train_only):
            raise UsageError(f"--resume: the run in {self.out} trains {', '.join(saved_only) or 'every part'}, "
                             f"not {', '.join(cfg.model.train_only) or 'every part'}: give the same --train-only")
        state, rng = load_checkpoint(ckpt, model, self.opt)
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.last_val, self.last_val_step = dict(state.get("val", {})), int(state.get("val_step", 0))
        if "scaler" in state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        if "cpu" in rng:
            self.g_cpu.set_state(rng["cpu"])
        if "dev" in rng:
            try:
                self.g_dev.set_state(rng["dev"])
            except RuntimeError:
                pass

    def save(self) -> None:
        state = {
            "step": self.step, "seconds": self.seconds, "model": self.cfg.model.size,
            "model_config": config_to_json(self.model.config), "val": self.last_val, "val_step": self.last_val_step,
            "config": self.cfg.record(),
        }
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        rng = {"cpu": self.g_cpu.get_state(), "dev": self.g_dev.get_state()}
        save_checkpoint(self.out, self.model, self.opt, rng, state)


def build_training_model(cfg: TrainConfig, device: torch.device) -> VidRestoreNet:
    """The network a run trains: its size with the model changes, under the run's inference options."""
    try:
        return VidRestoreNet(cfg.model.config, cfg.model.options).to(device)
    except ValueError as err:
        raise UsageError(str(err)) from None


def train(cfg: TrainConfig, echo: Callable[[str], None] = print) -> TrainResult:
    """Train (or continue training) as configured; returns where the run stands when it stops."""
    t_start = time.monotonic()
    deadline = None if cfg.run.minutes is None else t_start + cfg.run.minutes * 60.0
    out = Path(cfg.run.out)
    out.mkdir(parents=True, exist_ok=True)
    log = RunLog(out / "log.jsonl", echo)
    device = resolve_device(cfg.run.device)
    dtype = resolve_dtype(cfg.run.precision, device)
    model = build_training_model(cfg, device)
    multiple = model.config.multiple
    crop = cfg.data.crop // multiple * multiple
    if crop < 2 * multiple:
        raise UsageError(f"--crop {cfg.data.crop} is too small for the model (multiple of {multiple})")
    sched, loss_cfg, last_step = cfg.schedule, cfg.loss, cfg.schedule.last_step

    trainable = select_trainable(model, cfg.model.train_only)
    run = _Run(cfg, model, device, dtype, trainable)
    ckpt = find_checkpoint(out)
    if ckpt is not None and not cfg.run.resume:
        raise UsageError(f"{out} already holds a checkpoint: pass --resume to continue it, or choose another --out")
    if ckpt is not None:
        run.resume(ckpt)
        log("resume", f"resumed {ckpt} at step {run.step} ({run.seconds / 60:.1f} min trained)", step=run.step)
    elif cfg.model.init is not None:
        _init_from(model, cfg.model.init, log)

    n_params = sum(p.numel() for p in model.parameters())
    mix = cfg.data.mix()
    if cfg.model.train_only:
        n_train = sum(p.numel() for p in trainable)
        log("freeze", f"training only {', '.join(cfg.model.train_only)} ({n_train / 1e6:.3f}M params); the rest is frozen",
            train_only=list(cfg.model.train_only), trainable=n_train)
    log("start", f"model {cfg.model.size} ({n_params / 1e6:.2f}M params) on {device} {str(dtype).replace('torch.', '')}, "
        f"batch {cfg.data.batch}, crop {crop}, steps {run.step}->{last_step} of {sched.steps}, mix {mix}",
        model=cfg.model.size, params=n_params, device=str(device), dtype=str(dtype), batch=cfg.data.batch, crop=crop,
        step=run.step, steps=sched.steps, last_step=last_step, mix=mix, config=cfg.record())
    data = DataMix(cfg, crop, device, log)
    validator = Validator(cfg.run.val_count, cfg.run.val_size, multiple, device, dtype)
    base = validator.baseline
    log("baseline", f"val baseline (blurry key / linear blend): key {base['key_psnr']:.2f} dB, "
        f"inter {base['inter_psnr']:.2f} dB", baseline=base)

    def run_val() -> float:
        t0 = time.monotonic()
        res = validator(model)
        run.last_val, run.last_val_step = res, run.step
        log("val", f"val step {run.step}: key {res['key_psnr']:.2f} dB (blurry {base['key_psnr']:.2f}), "
            f"inter {res['inter_psnr']:.2f} dB (blend {base['inter_psnr']:.2f})", step=run.step, val=res, baseline=base)
        return time.monotonic() - t0

    model.train()
    step_ema: float | None = None
    val_secs = 0.0
    save_secs = 2.0
    window = {"loss": 0.0, "n": 0, "t": time.monotonic(), "sources": {}}
    bad_steps = 0
    stop_reason = "steps"
    chunk_t0 = time.monotonic()
    chunk_seconds_base = run.seconds

    def remaining() -> float:
        return math.inf if deadline is None else deadline - time.monotonic()

    source_loss = {name: loss_cfg.for_source(name) for name in SOURCES}
    try:
        while run.step < last_step:
            step = run.step
            if step > 0 and step % cfg.run.val_every == 0 and run.last_val_step != step:
                if remaining() < (val_secs or 5.0) + save_secs + 1.0:
                    stop_reason = "budget"
                    break
                val_secs = run_val()
            if remaining() < (step_ema or 0.0) * 1.5 + save_secs + 1.0:
                stop_reason = "budget"
                break
            t0 = time.monotonic()
            lr = sched.lr_at(step)
            for group in run.opt.param_groups:
                group["lr"] = lr
            source, sample = data.next(run.g_cpu, run.g_dev)
            if not loss_cfg.wants_inter:  # no loss term looks at in-between frames: skip making them
                sample = Sample(sample.inputs, sample.key, sample.inter[:, :0], sample.times[:0])
            with autocast(device, dtype):
                with_flows = sample.flows is not None and source_loss[source].flow_weight > 0
                key, inter, flows = _window_outputs(model, sample, with_flows)
            loss, _ = restoration_loss(key.float(), inter.float(), sample.key, sample.inter, source_loss[source],
                                       flows=flows, flow_target=sample.flows)
            run.opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                bad_steps += 1
                if bad_steps >= 20:
                    raise ProcessingError(f"training diverged: 20 consecutive non-finite losses at step {step}")
                log("warn", f"step {step}: non-finite loss, skipped", step=step)
                continue
            bad_steps = 0
            run.scaler.scale(loss).backward()
            run.scaler.unscale_(run.opt)
            gnorm = torch.nn.utils.clip_grad_norm_(trainable, sched.grad_clip)
            run.scaler.step(run.opt)
            run.scaler.update()
            run.step = step = step + 1
            dt = time.monotonic() - t0
            step_ema = dt if step_ema is None else 0.9 * step_ema + 0.1 * dt
            run.seconds = chunk_seconds_base + (time.monotonic() - chunk_t0)
            window["loss"] += float(loss.detach())
            window["n"] += 1
            window["sources"][source] = window["sources"].get(source, 0) + 1
            if step % cfg.run.log_every == 0 or step == last_step:
                el = time.monotonic() - window["t"]
                sps = window["n"] / max(el, 1e-9)
                avg = window["loss"] / max(1, window["n"])
                log("train", f"step {step}/{last_step} loss {avg:.4f} lr {lr:.2e} |g| {float(gnorm):.2f} "
                    f"{sps:.2f} steps/s ({sps * cfg.data.batch:.1f} samples/s) {dict(window['sources'])}",
                    step=step, loss=avg, lr=lr, grad_norm=float(gnorm), steps_per_s=sps,
                    sources=dict(window["sources"]), seconds=run.seconds)
                window = {"loss": 0.0, "n": 0, "t": time.monotonic(), "sources": {}}
            if step % cfg.run.ckpt_every == 0:
                t1 = time.monotonic()
                run.save()
                save_secs = max(1.0, time.monotonic() - t1)
    except KeyboardInterrupt:
        run.seconds = chunk_seconds_base + (time.monotonic() - chunk_t0)
        run.save()
        raise Interrupted(f"interrupted; checkpoint saved at step {run.step} in {out / 'ckpt'}") from None

    finished = run.step >= last_step
    if finished and run.last_val_step != run.step:
        run_val()
    run.seconds = chunk_seconds_base + (time.monotonic() - chunk_t0)
    run.save()
    export = Path(cfg.run.export) if cfg.run.export else out / "final.safetensors"
    sha = _export(model, export, _train_metadata(cfg, run, crop, validator))
    log("stop", f"stopped at step {run.step}/{last_step} ({stop_reason}); {run.seconds / 60:.1f} min trained; "
        f"exported {export} (sha256 {sha[:12]})", step=run.step, reason=stop_reason, seconds=run.seconds,
        export=str(export), sha256=sha, val=run.last_val)
    return TrainResult(step=run.step, seconds=run.seconds, finished=finished, export_path=str(export),
                       val=dict(run.last_val))


def _train_metadata(cfg: TrainConfig, run: _Run, crop: int, validator: Validator) -> dict[str, str]:
    """The ``train.*`` metadata of an exported weights file: how its tensors were trained."""
    device, data = run.device, cfg.data
    base = validator.baseline
    return {
        "train.steps": str(run.step), "train.seconds": f"{run.seconds:.0f}",
        "train.finished": str(run.step >= cfg.schedule.last_step).lower(),
        "train.device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "train.precision": str(run.dtype).replace("torch.", ""), "train.batch": str(data.batch), "train.crop": str(crop),
        "train.mix": json.dumps(data.mix(), sort_keys=True), "train.seed": str(cfg.run.seed),
        "train.init": cfg.model.init or "", "train.holdout_frames": str(data.holdout_frames),
        "train.only": ",".join(cfg.model.train_only),
        "train.data": json.dumps({"textures": [Path(t).name for t in data.textures],
                                  "clips": Path(data.clips).name if data.clips else None,
                                  "videos": Path(data.videos).name if data.videos else None}, sort_keys=True),
        "train.val": json.dumps({"step": run.last_val_step, **{k: round(v, 3) for k, v in run.last_val.items()},
                                 "baseline": {k: round(v, 3) for k, v in base.items()},
                                 "set": validator.description}, sort_keys=True),
    }


def _export(model: VidRestoreNet, path: Path, meta: dict[str, str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_weights(model, path, meta)


def _window_outputs(model: torch.nn.Module, sample: Sample, with_flows: bool):
    """(key, inter, stage flows or None) of a training batch of windows: ``restore_with_flows`` where a loss
    term supervises the flows, else the inference ``restore``."""
    feats = window_features(model.encode, sample.inputs)
    frames = [sample.inputs[:, i] for i in range(4)]
    if with_flows:
        return model.restore_with_flows(frames, feats, sample.times)
    key, inter = model.restore(frames, feats, sample.times)
    return key, inter, None


def select_trainable(model: torch.nn.Module, parts: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """Freeze every parameter outside the named top-level modules (all of them when ``parts`` is empty);
    returns the trainable ones."""
    children = {name for name, m in model.named_children() if any(True for _ in m.parameters())}
    unknown = [p for p in parts if p not in children]
    if unknown:
        raise UsageError(f"--train-only {unknown[0]!r}: not a part of the network; choose from {', '.join(sorted(children))}")
    out = []
    for name, p in model.named_parameters():
        train_it = not parts or name.split(".")[0] in parts
        p.requires_grad_(train_it)
        if train_it:
            out.append(p)
    return out


# optional network stages that --init may add to older weights (zero-initialised outputs: they start as the
# identity)
_GROWABLE = ("fine_flow", "half_flow")


def _init_from(model: VidRestoreNet, spec: str, log: RunLog) -> None:
    """Start a fresh run from existing weights (registry name or path), sha256-checked like any load."""
    source = load_model(spec, device=next(model.parameters()).device)
    # everything but the growable stages must match, and only the new stages' tensors may be missing
    grows = [f for f in _GROWABLE if getattr(source.config, f) == 0]  # added, never resized
    grown = replace(source.config, **{f: getattr(model.config, f) for f in grows})
    if grown != model.config:
        raise UsageError(f"--init {spec}: its model is {source.config.name!r} with a different configuration "
                         f"than --size {model.config.name!r}")
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    new_stage = [k for k in missing if k.split(".")[0] in grows]
    if unexpected or len(new_stage) != len(missing):
        raise UsageError(f"--init {spec}: tensors do not match --size {model.config.name!r} "
                         f"(missing {sorted(set(missing) - set(new_stage))[:3]}, unexpected {sorted(unexpected)[:3]})")
    for stage in grows:
        n = sum(1 for k in new_stage if k.startswith(stage + "."))
        if n:
            log("init", f"{n} tensors of the new {stage} stage start fresh (identity)", init=spec)
    if source.options != model.options:
        log("init", f"{spec} runs with other inference options than training's ({_options_diff(source.options, model.options)}); "
                    "the run trains with its own", init=spec)
    log("init", f"initialised from {spec}", init=spec)


def _options_diff(a, b) -> str:
    return ", ".join(f"{k}={getattr(a, k)}" for k in sorted(asdict(a)) if getattr(a, k) != getattr(b, k))
