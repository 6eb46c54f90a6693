"""Training the flow-prior network (:mod:`vidrestore.model.prior_net`): a recipe (TOML, see
``recipes/prior-small.toml``) -> :class:`PriorTrainConfig` -> :func:`train_prior`.

A run lives in one folder: ``ckpt/`` (resumable state), ``log.jsonl`` and the exported
``final.safetensors``. It is done in chunks: every call continues from the checkpoint until the last
step or its ``minutes`` are spent, then checkpoints and exports. Validation compares the network with
its floor on fixed batches: the input frame for the key frame, the prior's warp-and-blend (the network
with every correction zeroed, as built) for the in-between frames.
"""

from __future__ import annotations

import json
import math
import platform
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from vidrestore.errors import UsageError
from vidrestore.model.layers import window_features
from vidrestore.model.prior_net import PRIOR_CONFIGS, PriorNet
from vidrestore.runtime import autocast, resolve_device, resolve_dtype
from vidrestore.train.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from vidrestore.train.losses import charbonnier, laplacian_loss
from vidrestore.train.prior_data import Batch, BlurConfig, RealSampler, SyntheticSampler, footage_paths, load_footage
from vidrestore.weights import save_weights

SOURCES = ("real", "interp", "synthetic")


@dataclass(frozen=True)
class PriorTrainConfig:
    name: str
    out: str
    size: str = "small"
    steps: int = 20000
    batch: int = 4
    crop: int = 160
    lr: float = 4e-4
    restore_lr_scale: float = 1.0  # the restoration path's learning rate, as a multiple of ``lr``
    warmup: int = 200
    weight_decay: float = 1e-4
    minutes: float | None = None  # this call's budget
    seed: int = 0
    footage: tuple[str, ...] = ()  # video files or folders (searched recursively)
    holdout: tuple[str, ...] = ()  # videos whose first ``holdout_frames`` an evaluation scores
    holdout_frames: int = 96
    max_side: int = 640
    max_frames: int = 600  # per video
    mix: tuple[tuple[str, float], ...] = (("real", 0.5), ("interp", 0.25), ("synthetic", 0.25))
    key_weight: float = 1.0
    laplacian: float = 0.5
    val_every: int = 250
    log_every: int = 25
    checkpoint_minutes: float = 10.0
    threads: int = 2  # torch threads of the training process
    device: str = "cpu"  # auto, cpu, cuda, cuda:N
    precision: str = "fp32"  # fp32, bf16 or fp16 (autocast; the parameters stay float32)
    data_workers: int = 0  # processes making batches (0: in the training process, between steps)
    blur: BlurConfig = field(default_factory=BlurConfig)

    def __post_init__(self) -> None:
        if self.size not in PRIOR_CONFIGS:
            raise UsageError(f"unknown model size {self.size!r}; choose from {', '.join(PRIOR_CONFIGS)}")
        bad = [s for s, _ in self.mix if s not in SOURCES]
        if bad or not any(w > 0 for _, w in self.mix):
            raise UsageError(f"mix: sources are {', '.join(SOURCES)}, with some weight above 0")
        if self.steps < 1 or self.batch < 1 or self.crop < 32 or self.crop % 8:
            raise UsageError("steps and batch must be >= 1, crop a multiple of 8 from 32")


def load_prior_recipe(path: str | Path, overrides: dict[str, Any] | None = None,
                      data: str | Path | None = None) -> PriorTrainConfig:
    """A recipe file: top-level ``arch = "prior"``, the config's fields, and a ``[blur]`` and a ``[mix]``
    table. Paths are relative to the recipe's folder; ``{data}`` is ``data``, by default
    ``../shared/data`` beside the repository the recipe is in."""
    path = Path(path)
    root = Path(data) if data is not None else path.resolve().parent.parent.parent / "shared" / "data"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read recipe {path}: {err}") from None
    data.pop("arch", None)
    data.update(overrides or {})

    def resolve(p: str) -> str:
        p = p.replace("{data}", str(root))
        q = Path(p)
        return str(q if q.is_absolute() else (path.parent / q).resolve())

    for key in ("footage", "holdout"):
        data[key] = tuple(resolve(p) for p in data.get(key, ()))
    data["mix"] = tuple((str(k), float(v)) for k, v in dict(data.get("mix", {})).items()) or PriorTrainConfig.mix
    blur = dict(data.pop("blur", {}))
    for key in ("strides", "exposure", "shake_length"):
        if key in blur:
            blur[key] = tuple(blur[key])
    names = {f.name for f in fields(PriorTrainConfig)}
    unknown = set(data) - names
    if unknown:
        raise UsageError(f"recipe {path}: unknown fields {sorted(unknown)}")
    data.setdefault("name", path.stem)
    data.setdefault("out", str(Path("runs") / data["name"]))
    try:
        return PriorTrainConfig(**data, blur=BlurConfig(**blur))
    except TypeError as err:
        raise UsageError(f"recipe {path}: {err}") from None


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML (``2``, ``4e-4``, ``true``, ``[0.75, 1.0]``, ``"tiny"``), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_items(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``--set NAME=VALUE`` items -> (NAME as given, parsed VALUE) pairs."""
    out: list[tuple[str, Any]] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected NAME=VALUE, e.g. --set steps=2")
        out.append((key, parse_value(value.strip())))
    return out


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` items (VALUE in TOML syntax, else a string) -> recipe fields."""
    return {key.strip().lstrip("-").replace("-", "_"): value for key, value in set_items(items)}


class _Data:
    def __init__(self, cfg: PriorTrainConfig, log: Callable[[str], None]) -> None:
        weights = dict(cfg.mix)
        self.sources = [s for s in SOURCES if weights.get(s, 0) > 0]
        self.weights = torch.tensor([weights[s] for s in self.sources])
        self.real = None
        if "real" in self.sources or "interp" in self.sources:
            held = {str(Path(p).resolve()) for p in footage_paths(cfg.holdout)} if cfg.holdout else set()
            paths = footage_paths(cfg.footage)
            skips = [cfg.holdout_frames if str(p.resolve()) in held else 0 for p in paths]
            t0 = time.monotonic()
            videos = load_footage(paths, cfg.max_side, skips, max_frames=cfg.max_frames)
            log(f"footage: {len(videos)} shots from {len(paths)} videos, "
                f"{sum(v.shape[0] for v in videos)} frames ({time.monotonic() - t0:.0f} s)")
            self.real = RealSampler(videos, cfg.blur, cfg.threads)
        self.synthetic = SyntheticSampler(threads=cfg.threads) if "synthetic" in self.sources else None

    def batch(self, source: str, cfg: PriorTrainConfig, g: torch.Generator) -> Batch:
        if source == "synthetic":
            assert self.synthetic is not None
            return self.synthetic.sample(cfg.batch, min(cfg.crop, 128), g)
        assert self.real is not None
        return self.real.sample(cfg.batch, cfg.crop, g, sharp=source == "interp")

    def next(self, cfg: PriorTrainConfig, g: torch.Generator) -> Batch:
        source = self.sources[int(torch.multinomial(self.weights, 1, generator=g))]
        return self.batch(source, cfg, g)


def _make_batches(data: _Data, cfg: PriorTrainConfig, seed: int, queue) -> None:
    """A data worker process: batches into ``queue`` until the parent ends it."""
    torch.set_num_threads(1)  # one busy thread per worker process (plus its DIS thread)
    g = torch.Generator().manual_seed(seed)
    while True:
        queue.put(data.next(cfg, g))


class _Workers:
    """``cfg.data_workers`` processes making batches ahead of the training steps (forked: they share the
    footage already in memory). Their batches are random, not replayed exactly after a resume."""

    def __init__(self, data: _Data, cfg: PriorTrainConfig, seed: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self.queue = ctx.Queue(maxsize=2 * cfg.data_workers)
        self.procs = [ctx.Process(target=_make_batches, args=(data, cfg, seed * 1000 + i, self.queue), daemon=True)
                      for i in range(cfg.data_workers)]
        for proc in self.procs:
            proc.start()

    def next(self) -> Batch:
        return self.queue.get(timeout=600)

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(timeout=10)


def outputs(model: PriorNet, batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The network on a batch as the engine runs it: interp-mode batches (sharp inputs) keep their key
    frames as decoded, so only their in-between frames are made."""
    frames = batch.inputs
    feats = window_features(model.encode, frames)
    return model.restore([frames[:, i] for i in range(4)], feats, batch.times, batch.prior,
                         with_key=not batch.sharp, sharp=batch.sharp)


def loss_of(model: PriorNet, batch: Batch, cfg: PriorTrainConfig) -> torch.Tensor:
    key, inter = outputs(model, batch)
    loss = torch.zeros((), dtype=torch.float32, device=batch.key.device)
    if key is not None:
        loss = loss + cfg.key_weight * (charbonnier(key, batch.key)
                                        + cfg.laplacian * laplacian_loss(key, batch.key))
    if inter.shape[1]:
        loss = loss + charbonnier(inter, batch.inter) + cfg.laplacian * laplacian_loss(inter, batch.inter)
    return loss


def _mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float((pred.float().clamp(0, 1) - target.float()).square().mean())


def _db(mse: float) -> float:
    """PSNR of a mean squared error (the mean over a source's batches: sharp items, whose error is zero,
    do not dominate it as a mean of per-item PSNRs would)."""
    return round(10 * math.log10(1.0 / max(mse, 1e-10)), 3)


class Validator:
    """Fixed batches of every source (seeded), scored against their floors."""

    def __init__(self, data: _Data, cfg: PriorTrainConfig, device: torch.device, dtype: torch.dtype,
                 count: int = 3) -> None:
        g = torch.Generator().manual_seed(10_000 + cfg.seed)
        self.device, self.dtype = device, dtype
        self.batches = [(s, data.batch(s, cfg, g).to(device)) for s in data.sources for _ in range(count)]
        floor = PriorNet(PRIOR_CONFIGS[cfg.size]).to(device).eval()  # every correction zero: warp-and-blend
        self.floor = self._score(floor, with_floor_key=True)

    @torch.no_grad()
    def _score(self, model: PriorNet, with_floor_key: bool = False) -> dict[str, float]:
        acc: dict[str, list[float]] = {}
        for source, batch in self.batches:
            with autocast(self.device, self.dtype):
                key, inter = outputs(model, batch)
            if key is not None:
                acc.setdefault(f"{source}.key", []).append(_mse(batch.inputs[:, 1] if with_floor_key else key,
                                                                batch.key))
            if inter.shape[1]:
                acc.setdefault(f"{source}.inter", []).append(_mse(inter, batch.inter))
        return {k: _db(sum(v) / len(v)) for k, v in acc.items()}

    def __call__(self, model: PriorNet) -> dict[str, float]:
        was = model.training
        model.eval()
        try:
            return self._score(model)
        finally:
            model.train(was)


def _lr(cfg: PriorTrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def _param_groups(model: PriorNet, cfg: PriorTrainConfig) -> list[dict[str, Any]]:
    """Two groups: the restoration path (its own ``restore_lr_scale``: it makes images, and learns
    slowly at the rate that suits the flow corrections, whose units are pixels of motion), the rest."""
    restore = [p for p in model.restorer.parameters()]
    ids = {id(p) for p in restore}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": rest, "scale": 1.0}, {"params": restore, "scale": cfg.restore_lr_scale}]


def train_prior(cfg: PriorTrainConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or continue) a recipe on the CPU; returns the last validation and the export path."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.jsonl"

    def log(kind: str, text: str, **record: Any) -> None:
        echo(text)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "time": round(time.time(), 3), **record}, sort_keys=True) + "\n")

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.precision, device)
    model = PriorNet(PRIOR_CONFIGS[cfg.size]).to(device)
    opt = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(cfg.seed)
    step, seconds, history = 0, 0.0, []
    ckpt = find_checkpoint(out)
    if ckpt is not None:
        state, rng = load_checkpoint(ckpt, model, opt)
        step, seconds, history = int(state["step"]), float(state["seconds"]), list(state.get("val", []))
        if "cpu" in rng:
            g.set_state(rng["cpu"])
        for group, fresh in zip(opt.param_groups, _param_groups(model, cfg)):
            group["scale"] = fresh["scale"]  # the recipe's, not the checkpoint's
        log("resume", f"resumed {cfg.name} at step {step} ({seconds / 60:.1f} min trained)", step=step)
    data = _Data(cfg, lambda text: log("data", text))
    workers = _Workers(data, cfg, cfg.seed + step) if cfg.data_workers > 0 else None  # forked before any compute
    validator = Validator(data, cfg, device, dtype)
    log("floor", f"floor (input key frame, prior warp-and-blend): {validator.floor}", val=validator.floor)
    model.train()
    start = time.monotonic()
    last_ckpt = start
    budget = None if cfg.minutes is None else cfg.minutes * 60

    def checkpoint() -> None:
        save_checkpoint(out, model, opt, {"cpu": g.get_state()},
                        {"step": step, "seconds": seconds + time.monotonic() - start, "val": history,
                         "config": _jsonable(cfg)})

    running = 0.0
    try:
        while step < cfg.steps and (budget is None or time.monotonic() - start < budget):
            batch = (workers.next() if workers is not None else data.next(cfg, g)).to(device)
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step) * group["scale"]
            with autocast(device, dtype):
                loss = loss_of(model, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            running += float(loss.detach())
            if step % cfg.log_every == 0:
                log("train", f"step {step}: loss {running / cfg.log_every:.4f}, lr {_lr(cfg, step):.2e}, "
                    f"{(time.monotonic() - start) / 60:.1f} min", step=step, loss=running / cfg.log_every)
                running = 0.0
            if step % cfg.val_every == 0 or step == cfg.steps:
                val = validator(model)
                history.append({"step": step, **val})
                log("val", f"val at {step}: {val}", step=step, val=val)
            if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
    finally:
        if workers is not None:
            workers.close()
        checkpoint()
        total = seconds + time.monotonic() - start
        export = out / "final.safetensors"
        meta = {"train.recipe": cfg.name, "train.steps": str(step), "train.seconds": str(round(total)),
                "train.hardware": _hardware(device, cfg.threads),
                "train.config": json.dumps(_jsonable(cfg), sort_keys=True)}
        model.eval()
        save_weights(model, export, meta)
        log("export", f"step {step}, {total / 60:.1f} min trained: {export}", step=step)
    return {"step": step, "finished": step >= cfg.steps, "export": str(export),
            "val": history[-1] if history else {}, "floor": validator.floor}


def _hardware(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {threads} threads"


def _jsonable(cfg: PriorTrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg), default=str))
