"""The training loop: data mix, AdamW with warmup + cosine, autocast, checkpoints, time budget, validation.

A run lives in one folder (``TrainConfig.out``): ``ckpt/`` (resumable state, never shipped),
``log.jsonl`` (one JSON record per log/validation line) and the exported ``final.safetensors``
(written with ``vidrestore.weights.save_weights`` whenever the run stops). A run is meant to be
done in chunks: each invocation with ``resume=True`` continues from the checkpoint until ``steps`` is
reached or its ``minutes`` budget is spent, then checkpoints and exports.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from vidrestore.errors import Interrupted, ProcessingError, UsageError
from vidrestore.model.network import window_features
from vidrestore.train.checkpoint import find_checkpoint, load_checkpoint, read_state, save_checkpoint
from vidrestore.train.losses import LossConfig, psnr, restoration_loss
from vidrestore.synth.scenes import Sample, SceneConfig, default_times, render_batch, validation_set

SOURCES = ("synthetic", "clips", "videos")


@dataclass(frozen=True)
class TrainConfig:
    out: str  # run folder: checkpoints, log.jsonl, final.safetensors
    model: str = "small"  # tiny | small | default
    steps: int = 20000  # total optimizer steps of the whole run (over all resumed chunks)
    minutes: float | None = None  # time budget of this invocation (None: until ``steps``)
    batch: int = 8
    crop: int = 96  # training crop (rounded down to the model's multiple)
    lr: float = 4e-4
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    warmup: int = 300
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    factor: int = 8  # target times j/factor
    random_t_prob: float = 0.3  # synthetic batches whose target times are random in (0,1)
    subframes: int = 8  # synthetic sub-frames per input interval (>= 8, multiple of factor)
    max_speed: float = 24.0  # synthetic motion: px per input interval at the crop size
    exposure: tuple[float, float] = (0.0, 1.0)  # synthetic exposure range, fraction of the frame interval
    sharp_prob: float = 0.15  # synthetic samples with sharp inputs (exposure 0)
    noise: float = 0.01  # max std of the noise added to synthetic inputs (half of the samples)
    mix_synthetic: float = 1.0
    mix_clips: float | None = None  # None: 0.25 if ``clips`` is given, else 0
    mix_videos: float | None = None  # None: 0.5 if ``videos`` is given, else 0
    textures: tuple[str, ...] = ()  # folders/files of images or videos for synthetic textures
    clips: str | None = None  # sharp ordinary-rate footage (interpolation samples)
    clip_strides: tuple[int, ...] = (2,)
    clip_scale: float = 0.25
    # key-frame loss weight in clip batches (None: the same as loss.key_weight). A clip sample's key
    # input is its own target, so that term only teaches the key branch to leave frames alone.
    clip_key_weight: float | None = None
    # weight of the flow term in clip batches, against DIS teacher flows from the true in-between frame
    # (vidrestore.train.teacher); 0: clip batches carry no flows
    clip_flow_weight: float = 0.0
    videos: str | None = None  # high-frame-rate footage (Adobe240-style samples)
    video_scale: float = 0.5
    holdout_frames: int = 0  # the first frames of every video (clips, videos, textures) are never used
    init: str | None = None  # weights (name or path) a fresh run starts from (fine-tuning); unused on resume
    # train only these parts of the network (top-level modules of VidRestoreNet, e.g. "key_branch");
    # every other parameter stays frozen. Empty: train everything.
    train_only: tuple[str, ...] = ()
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; fp32 master weights)
    resume: bool = False
    log_every: int = 25
    val_every: int = 500
    ckpt_every: int = 250
    val_count: int = 16
    val_size: int = 128
    export: str | None = None  # default: <out>/final.safetensors
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UsageError("--steps must be >= 1")
        if self.batch < 1:
            raise UsageError("--batch must be >= 1")
        if self.crop < 16:
            raise UsageError("--crop must be >= 16")
        if not (self.lr > 0):
            raise UsageError("--lr must be > 0")
        if self.minutes is not None and not (self.minutes > 0):
            raise UsageError("--minutes must be > 0")
        if self.factor < 2:
            raise UsageError("factor must be >= 2")
        for name in ("log_every", "val_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1")
        if self.val_count < 1:
            raise UsageError("val_count must be >= 1")
        if self.holdout_frames < 0:
            raise UsageError("--holdout-frames must be >= 0")
        if not self.clip_scale > 0:
            raise UsageError("--clip-scale must be > 0")
        if not self.video_scale > 0:
            raise UsageError("video_scale must be > 0")
        if self.loss.key_weight < 0:
            raise UsageError("--key-weight must be >= 0")
        if self.loss.inter_weight < 0:
            raise UsageError("--inter-weight must be >= 0")
        if self.loss.key_weight == 0 and self.loss.inter_weight == 0 and self.loss.flow_weight == 0 \
                and self.clip_flow_weight == 0:
            raise UsageError("--key-weight, --inter-weight, --flow-weight and --clip-flow-weight are all 0: nothing to train")
        if not (0.0 <= self.sharp_prob <= 1.0):
            raise UsageError(f"--sharp-prob {self.sharp_prob}: must lie in [0, 1]")
        if not self.noise >= 0:
            raise UsageError(f"--noise {self.noise}: must be >= 0")
        lo, hi = self.exposure
        if not (0.0 <= lo <= hi <= 1.0):
            raise UsageError(f"--exposure {lo} {hi}: need 0 <= MIN <= MAX <= 1")
        if not self.loss.flow_weight >= 0:
            raise UsageError(f"--flow-weight {self.loss.flow_weight}: must be >= 0")
        if self.clip_key_weight is not None and self.clip_key_weight < 0:
            raise UsageError("--clip-key-weight must be >= 0")
        if not self.clip_flow_weight >= 0:
            raise UsageError(f"--clip-flow-weight {self.clip_flow_weight}: must be >= 0")
        if self.clip_flow_weight > 0 and not self.clips:
            raise UsageError("--clip-flow-weight needs --clips DIR")
        self.mix()  # validates the data mix
        SceneConfig(height=self.crop, width=self.crop, factor=self.factor, subframes_per_interval=self.subframes,
                    exposure=tuple(self.exposure), max_speed=self.max_speed, sharp_prob=self.sharp_prob,
                    noise=self.noise)  # validates the scene settings

    def mix(self) -> dict[str, float]:
        clips = self.mix_clips if self.mix_clips is not None else (0.25 if self.clips else 0.0)
        videos = self.mix_videos if self.mix_videos is not None else (0.5 if self.videos else 0.0)
        mix = {"synthetic": float(self.mix_synthetic), "clips": float(clips), "videos": float(videos)}
        if any(v < 0 for v in mix.values()):
            raise UsageError("data mix weights must be >= 0")
        if mix["clips"] > 0 and not self.clips:
            raise UsageError("a clips weight was given without --clips DIR")
        if mix["videos"] > 0 and not self.videos:
            raise UsageError("a videos weight was given without --videos DIR")
        if sum(mix.values()) <= 0:
            raise UsageError("the data mix is empty: give synthetic, clips or videos a positive weight")
        return mix


@dataclass(frozen=True)
class TrainResult:
    step: int
    seconds: float  # training time over all chunks
    finished: bool  # ``steps`` reached
    export_path: str
    val: dict[str, float]


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine from lr down to lr * min_lr_ratio at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    p = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


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

    def __init__(self, cfg: TrainConfig, multiple: int, device: torch.device, dtype: torch.dtype):
        samples = validation_set(count=cfg.val_count, height=cfg.val_size, width=cfg.val_size, factor=8, exposure=7 / 8)
        self.samples = [
            Sample(_fit(s.inputs, multiple), _fit(s.key, multiple), _fit(s.inter, multiple), s.times).to(device)
            for s in samples
        ]
        self.device, self.dtype = device, dtype
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
        autocast = self.dtype != torch.float32
        for s in self.samples:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=autocast):
                k, it = model(s.inputs, s.times)
            key.append(psnr(k.float(), s.key))
            inter.append(psnr(it.float(), s.inter).flatten())
        model.train(was_training)
        return {"key_psnr": float(torch.cat(key).mean()), "inter_psnr": float(torch.cat(inter).mean())}


class DataMix:
    """Draws each batch from one source, chosen by the mix weights."""

    def __init__(self, cfg: TrainConfig, crop: int, device: torch.device, log: RunLog):
        from vidrestore.synth.textures import TextureBank

        self.cfg, self.crop, self.device = cfg, crop, device
        self.weights = cfg.mix()
        self.textures = None
        if cfg.textures and self.weights["synthetic"] > 0:
            self.textures = TextureBank.from_paths(cfg.textures, device, skip_frames=cfg.holdout_frames)
            log("data", f"textures: {len(self.textures)} images from {', '.join(cfg.textures)}",
                textures=len(self.textures))
        self.scene = SceneConfig(
            height=crop, width=crop, factor=cfg.factor, subframes_per_interval=cfg.subframes,
            exposure=tuple(cfg.exposure), max_speed=cfg.max_speed, reference_size=crop,
            sharp_prob=cfg.sharp_prob, noise=cfg.noise,
        )
        self.clips = self.videos = None
        if self.weights["clips"] > 0:
            from vidrestore.train.data import ClipSampler

            self.clips = ClipSampler.from_dir(cfg.clips, cfg.clip_strides, scale=cfg.clip_scale,
                                              skip_frames=cfg.holdout_frames)
            log("data", f"clips: {len(self.clips.videos)} videos, {self.clips.frame_count} frames",
                clips=self.clips.frame_count)
        if self.weights["videos"] > 0:
            from vidrestore.train.data import VideoSampler

            self.videos = VideoSampler.from_dir(cfg.videos, cfg.factor, scale=cfg.video_scale,
                                                skip_frames=cfg.holdout_frames)
            log("data", f"videos: {len(self.videos.videos)} videos, {self.videos.frame_count} frames",
                videos=self.videos.frame_count)
        names = [n for n in SOURCES if self.weights[n] > 0]
        self.names = names
        self.probs = torch.tensor([self.weights[n] for n in names], dtype=torch.float64)

    def next(self, g_cpu: torch.Generator, g_dev: torch.Generator) -> tuple[str, Sample]:
        i = int(torch.multinomial(self.probs, 1, generator=g_cpu)) if len(self.names) > 1 else 0
        name = self.names[i]
        if name == "synthetic":
            times = None
            if float(torch.rand(1, generator=g_cpu)) < self.cfg.random_t_prob:
                times = torch.sort(torch.rand(self.cfg.factor - 1, generator=g_cpu)).values.clamp(0.02, 0.98)
                times = times.to(self.device)
            else:
                times = default_times(self.cfg.factor, self.device)
            return name, render_batch(self.scene, self.cfg.batch, g_dev, self.device, self.textures, times=times,
                                      with_flows=self.cfg.loss.flow_weight > 0)
        if name == "clips":
            sample = self.clips.sample(self.cfg.batch, self.crop, g_cpu, self.device)
            if self.cfg.clip_flow_weight > 0:
                from vidrestore.train.teacher import with_teacher_flows

                sample = with_teacher_flows(sample)
            return name, sample
        return name, self.videos.sample(self.cfg.batch, self.crop, g_cpu, self.device)


def _export(cfg: TrainConfig, model, path: Path, meta: dict[str, str]) -> str:
    from vidrestore.weights import save_weights

    path.parent.mkdir(parents=True, exist_ok=True)
    return save_weights(model, path, meta)


def train(cfg: TrainConfig, echo: Callable[[str], None] = print) -> TrainResult:
    """Train (or continue training) as configured; returns where the run stands when it stops."""
    from vidrestore.device import resolve_device, resolve_dtype
    from vidrestore.model.network import build_model, config_to_json

    t_start = time.monotonic()
    deadline = None if cfg.minutes is None else t_start + cfg.minutes * 60.0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log = RunLog(out / "log.jsonl", echo)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.precision, device)
    try:
        model = build_model(cfg.model).to(device)
    except ValueError as err:
        raise UsageError(str(err)) from None
    multiple = model.config.multiple
    crop = cfg.crop // multiple * multiple
    if crop < 2 * multiple:
        raise UsageError(f"--crop {cfg.crop} is too small for the model (multiple of {multiple})")

    trainable = _select_trainable(model, cfg.train_only)
    decay, no_decay = [], []
    for p in trainable:
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.99),
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    g_cpu = _make_generator(torch.device("cpu"), cfg.seed)
    g_dev = _make_generator(device, cfg.seed + 1)

    step, seconds, last_val, last_val_step = 0, 0.0, {}, 0
    ckpt = find_checkpoint(out)
    if ckpt is not None and not cfg.resume:
        raise UsageError(f"{out} already holds a checkpoint: pass --resume to continue it, or choose another --out")
    if ckpt is not None:
        peek = read_state(ckpt)
        if peek.get("model") != cfg.model:
            raise UsageError(f"--resume: the checkpoint in {out} is for model {peek.get('model')!r}, not {cfg.model!r}")
        saved_only = tuple(peek.get("config", {}).get("train_only") or ())
        if saved_only != tuple(cfg.train_only):
            raise UsageError(f"--resume: the run in {out} trains {', '.join(saved_only) or 'every part'}, "
                             f"not {', '.join(cfg.train_only) or 'every part'}: give the same --train-only")
        state, rng = load_checkpoint(ckpt, model, opt)
        step, seconds = int(state["step"]), float(state["seconds"])
        last_val, last_val_step = dict(state.get("val", {})), int(state.get("val_step", 0))
        if "scaler" in state and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        if "cpu" in rng:
            g_cpu.set_state(rng["cpu"])
        if "dev" in rng:
            try:
                g_dev.set_state(rng["dev"])
            except RuntimeError:
                pass
        log("resume", f"resumed {ckpt} at step {step} ({seconds / 60:.1f} min trained)", step=step)
    elif cfg.init is not None:
        _init_from(model, cfg.init, log)

    n_params = sum(p.numel() for p in model.parameters())
    mix = cfg.mix()
    if cfg.train_only:
        n_train = sum(p.numel() for p in trainable)
        log("freeze", f"training only {', '.join(cfg.train_only)} ({n_train / 1e6:.3f}M params); the rest is frozen",
            train_only=list(cfg.train_only), trainable=n_train)
    log("start", f"model {cfg.model} ({n_params / 1e6:.2f}M params) on {device} {str(dtype).replace('torch.', '')}, "
        f"batch {cfg.batch}, crop {crop}, steps {step}->{cfg.steps}, mix {mix}",
        model=cfg.model, params=n_params, device=str(device), dtype=str(dtype), batch=cfg.batch, crop=crop,
        step=step, steps=cfg.steps, mix=mix, config=_config_record(cfg))
    data = DataMix(cfg, crop, device, log)
    validator = Validator(cfg, multiple, device, dtype)
    base = validator.baseline
    log("baseline", f"val baseline (blurry key / linear blend): key {base['key_psnr']:.2f} dB, "
        f"inter {base['inter_psnr']:.2f} dB", baseline=base)

    def save_state() -> None:
        state = {
            "step": step, "seconds": seconds, "model": cfg.model, "model_config": config_to_json(model.config),
            "val": last_val, "val_step": last_val_step, "config": _config_record(cfg),
        }
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        rng = {"cpu": g_cpu.get_state(), "dev": g_dev.get_state()}
        save_checkpoint(out, model, opt, rng, state)

    def run_val() -> float:
        nonlocal last_val, last_val_step
        t0 = time.monotonic()
        res = validator(model)
        last_val, last_val_step = res, step
        log("val", f"val step {step}: key {res['key_psnr']:.2f} dB (blurry {base['key_psnr']:.2f}), "
            f"inter {res['inter_psnr']:.2f} dB (blend {base['inter_psnr']:.2f})", step=step, val=res, baseline=base)
        return time.monotonic() - t0

    model.train()
    step_ema: float | None = None
    val_secs = 0.0
    save_secs = 2.0
    window = {"loss": 0.0, "n": 0, "t": time.monotonic(), "sources": {}}
    bad_steps = 0
    stop_reason = "steps"
    chunk_t0 = time.monotonic()
    chunk_seconds_base = seconds

    def remaining() -> float:
        return math.inf if deadline is None else deadline - time.monotonic()

    loss_cfg = {name: cfg.loss for name in SOURCES}
    clip_key = cfg.loss.key_weight if cfg.clip_key_weight is None else cfg.clip_key_weight
    loss_cfg["clips"] = replace(cfg.loss, key_weight=clip_key, flow_weight=cfg.clip_flow_weight)
    wants_inter = cfg.loss.inter_weight > 0 or cfg.loss.flow_weight > 0 or cfg.clip_flow_weight > 0
    try:
        while step < cfg.steps:
            if step > 0 and step % cfg.val_every == 0 and last_val_step != step:
                if remaining() < (val_secs or 5.0) + save_secs + 1.0:
                    stop_reason = "budget"
                    break
                val_secs = run_val()
            if remaining() < (step_ema or 0.0) * 1.5 + save_secs + 1.0:
                stop_reason = "budget"
                break
            t0 = time.monotonic()
            lr = lr_at(cfg, step)
            for group in opt.param_groups:
                group["lr"] = lr
            source, sample = data.next(g_cpu, g_dev)
            if not wants_inter:  # no loss term looks at in-between frames: skip making them
                sample = Sample(sample.inputs, sample.key, sample.inter[:, :0], sample.times[:0])
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32):
                with_flows = sample.flows is not None and loss_cfg[source].flow_weight > 0
                key, inter, flows = _window_outputs(model, sample, with_flows)
            loss, _ = restoration_loss(key.float(), inter.float(), sample.key, sample.inter, loss_cfg[source],
                                       flows=flows, flow_target=sample.flows)
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                bad_steps += 1
                if bad_steps >= 20:
                    raise ProcessingError(f"training diverged: 20 consecutive non-finite losses at step {step}")
                log("warn", f"step {step}: non-finite loss, skipped", step=step)
                continue
            bad_steps = 0
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            gnorm = torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            step += 1
            dt = time.monotonic() - t0
            step_ema = dt if step_ema is None else 0.9 * step_ema + 0.1 * dt
            seconds = chunk_seconds_base + (time.monotonic() - chunk_t0)
            window["loss"] += float(loss.detach())
            window["n"] += 1
            window["sources"][source] = window["sources"].get(source, 0) + 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                el = time.monotonic() - window["t"]
                sps = window["n"] / max(el, 1e-9)
                avg = window["loss"] / max(1, window["n"])
                log("train", f"step {step}/{cfg.steps} loss {avg:.4f} lr {lr:.2e} |g| {float(gnorm):.2f} "
                    f"{sps:.2f} steps/s ({sps * cfg.batch:.1f} samples/s) {dict(window['sources'])}",
                    step=step, loss=avg, lr=lr, grad_norm=float(gnorm), steps_per_s=sps,
                    sources=dict(window["sources"]), seconds=seconds)
                window = {"loss": 0.0, "n": 0, "t": time.monotonic(), "sources": {}}
            if step % cfg.ckpt_every == 0:
                t1 = time.monotonic()
                save_state()
                save_secs = max(1.0, time.monotonic() - t1)
    except KeyboardInterrupt:
        seconds = chunk_seconds_base + (time.monotonic() - chunk_t0)
        save_state()
        raise Interrupted(f"interrupted; checkpoint saved at step {step} in {out / 'ckpt'}") from None

    finished = step >= cfg.steps
    if finished and last_val_step != step:
        run_val()
    seconds = chunk_seconds_base + (time.monotonic() - chunk_t0)
    save_state()
    export = Path(cfg.export) if cfg.export else out / "final.safetensors"
    meta = {
        "train.steps": str(step), "train.seconds": f"{seconds:.0f}", "train.finished": str(finished).lower(),
        "train.device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "train.precision": str(dtype).replace("torch.", ""), "train.batch": str(cfg.batch), "train.crop": str(crop),
        "train.mix": json.dumps(mix, sort_keys=True), "train.seed": str(cfg.seed),
        "train.init": cfg.init or "", "train.holdout_frames": str(cfg.holdout_frames),
        "train.only": ",".join(cfg.train_only),
        "train.data": json.dumps({"textures": [Path(t).name for t in cfg.textures],
                                  "clips": Path(cfg.clips).name if cfg.clips else None,
                                  "videos": Path(cfg.videos).name if cfg.videos else None}, sort_keys=True),
        "train.val": json.dumps({"step": last_val_step, **{k: round(v, 3) for k, v in last_val.items()},
                                 "baseline": {k: round(v, 3) for k, v in base.items()},
                                 "set": f"synthetic seed 1234, {cfg.val_count} x {cfg.val_size}px, 8x, exposure 7/8"},
                                sort_keys=True),
    }
    sha = _export(cfg, model, export, meta)
    log("stop", f"stopped at step {step}/{cfg.steps} ({stop_reason}); {seconds / 60:.1f} min trained; "
        f"exported {export} (sha256 {sha[:12]})", step=step, reason=stop_reason, seconds=seconds,
        export=str(export), sha256=sha, val=last_val)
    return TrainResult(step=step, seconds=seconds, finished=finished, export_path=str(export), val=dict(last_val))


def _window_outputs(model: torch.nn.Module, sample: Sample, with_flows: bool):
    """(key, inter, stage flows or None) of a training batch of windows: ``restore_with_flows`` where a loss
    term supervises the flows, else the inference ``restore``."""
    feats = window_features(model.encode, sample.inputs)
    frames = [sample.inputs[:, i] for i in range(4)]
    if with_flows:
        return model.restore_with_flows(frames, feats, sample.times)
    key, inter = model.restore(frames, feats, sample.times)
    return key, inter, None


def _select_trainable(model: torch.nn.Module, parts: tuple[str, ...]) -> list[torch.nn.Parameter]:
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


def _init_from(model: torch.nn.Module, spec: str, log: RunLog) -> None:
    """Start a fresh run from existing weights (registry name or path), sha256-checked like any load."""
    from vidrestore.weights import load_model

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


def _config_record(cfg: TrainConfig) -> dict[str, Any]:
    rec = asdict(cfg)
    return json.loads(json.dumps(rec, default=str))
