"""Training the flow-prior network (:mod:`vidrestore.model.prior_net`): a recipe (TOML, see
``recipes/prior-small.toml``) -> :class:`PriorTrainConfig` -> :func:`train_prior`.

A run lives in one folder: ``ckpt/`` (resumable state, with the weights' moving average), ``log.jsonl``,
``cache/`` (the stored training windows, :mod:`vidrestore.train.cache`, unless the recipe puts it
elsewhere) and the exported ``final.safetensors`` (the moving average). It is done in chunks: every call
continues from the checkpoint until the last step or its ``minutes`` are spent, then checkpoints and
exports. A training step is compute only: it draws cached windows and augments them
(:mod:`vidrestore.train.batches`), while ``vidrestore train --fill-cache`` may keep adding fresh windows
in another, low-priority process. The curriculum's stages (:class:`Stage`) say which parts learn from
which windows. Validation scores fixed windows of held-out frames against their floors: the input frame
for the key frame, the prior's warp-and-blend (the network with every correction zeroed, as built) for
the in-between frames. Training a network further (``init``) adds to the steps and hours its file records.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import platform
import time
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vidrestore.config import check_precision
from vidrestore.errors import UsageError
from vidrestore import threads
from vidrestore.model.layers import window_features
from vidrestore.model.prior_net import EIGHTH, PRIOR_CONFIGS, PriorConfig, PriorFlows, PriorNet
from vidrestore.runtime import autocast, resolve_device, resolve_dtype
from vidrestore.train.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from vidrestore.train.batches import CachedBatches, validation_batches
from vidrestore.train.cache import CacheSettings, WindowCache, WindowMaker, ensure_validation, fill
from vidrestore.train.losses import blur_mask, charbonnier, fft_loss, laplacian_loss, masked_charbonnier
from vidrestore.train.prior_data import STORED_TIMES, Batch, BlurConfig
from vidrestore.weights import locate, read_tensors, save_weights

EMA_FILE = "ema.safetensors"

SOURCES = ("real", "interp", "synthetic")
STAGES = ("restore", "motion", "joint")


@dataclass(frozen=True)
class Stage:
    """One part of the curriculum, until step ``until`` (0: to the end of the run). Steps count the whole
    training, a warm start's steps included (a run that starts from a file trained for 20,000 steps is at
    step 20,000 of the curriculum).

    - ``restore``: the restoration path alone (the motion part held fixed) on key frames only: cheap steps,
      neighbours sometimes replicated (as at the ends of a video and at cuts);
    - ``motion``: in-between frames and the motion correction (key frames too, weighted by ``key_weight``);
    - ``joint``: everything together.
    """

    name: str
    until: int = 0
    mix: tuple[tuple[str, float], ...] = (("real", 1.0),)
    batch: int = 8
    crop: int = 128
    key_weight: float = 1.0
    replicate_prob: float = 0.1  # restore: an item whose neighbours are the key frame itself
    times: int = 1  # in-between targets per item (motion, joint): the restoration path runs once per time

    def __post_init__(self) -> None:
        if self.name not in STAGES:
            raise UsageError(f"stage {self.name!r}: stages are {', '.join(STAGES)}")
        bad = [s for s, _ in self.mix if s not in SOURCES]
        if bad or not any(w > 0 for _, w in self.mix):
            raise UsageError(f"stage {self.name}: mix sources are {', '.join(SOURCES)}, with some weight above 0")
        if self.name == "restore" and any(s == "interp" and w > 0 for s, w in self.mix):
            raise UsageError("stage restore: interp windows have no key frame to restore")
        if self.batch < 1 or self.crop < 32 or self.crop % 16:
            raise UsageError(f"stage {self.name}: batch >= 1, crop a multiple of 16 from 32")
        if not 1 <= self.times <= STORED_TIMES:
            raise UsageError(f"stage {self.name}: times from 1 to {STORED_TIMES}")

    @property
    def targets(self) -> int:
        """In-between targets per item of its batches."""
        return 0 if self.name == "restore" else self.times


@dataclass(frozen=True)
class PriorTrainConfig:
    name: str
    out: str
    size: str = "small"
    view_attention: bool | None = None  # None: the size's own (set for ablations)
    local_attention: int | None = None
    restore_motion: bool | None = None  # None: the size's own (the restoration path's motion input)
    head_scale: int | None = None  # None: the size's own (the per-t flow head's scale, 4 or 8)
    refine_scale: int | None = None  # ... the interp refiner's (2 or 4)
    # None: the size's own. The restoration path's blocks per level: more at a level starts the added ones as the
    # identity (a warm start from a file with fewer keeps everything it learnt)
    blocks: tuple[int, ...] | None = None
    steps: int = 20000
    stages: tuple[Stage, ...] = (Stage("joint", mix=(("real", 0.6), ("interp", 0.15), ("synthetic", 0.25)),
                                       batch=4, crop=128),)
    lr: float = 4e-4
    restore_lr_scale: float = 1.0  # the restoration path's learning rate, as a multiple of ``lr``
    warmup: int = 200
    decay: int = 0  # steps of cosine decay at the end of ``steps`` (0: constant after the warm-up)
    weight_decay: float = 1e-4
    ema: float = 0.999  # validated and exported: an exponential moving average of the weights
    init: str | None = None  # warm start from these weights (a path or a registered name)
    minutes: float | None = None  # this call's budget
    seed: int = 0
    footage: tuple[str, ...] = ()  # video files or folders (searched recursively)
    holdout: tuple[str, ...] = ()  # videos whose first ``holdout_frames`` validation scores (never trained on)
    holdout_frames: int = 96
    max_side: int = 640
    max_frames: int = 600  # per video
    mix: tuple[tuple[str, float], ...] = (("real", 0.6), ("interp", 0.15), ("synthetic", 0.25))  # the cache's
    cache: str | None = None  # the window cache folder [default: OUT/cache]
    cache_windows: int = 4096  # windows the cache holds (a filler replaces the oldest)
    cache_min: int = 512  # windows made before training starts, when the cache holds fewer
    store: int = 160  # stored window size (training crops from it)
    shard: int = 64  # windows per shard
    synthetic_textures: float = 0.0  # share of the synthetic scenes' textures cut from the footage (0: procedural)
    laplacian: float = 0.5
    fft: float = 0.0  # weight of an L1 term on the Fourier spectrum
    blur_weight: float = 0.0  # key frames: weight of a Charbonnier term on the pixels the blur changed
    val_every: int = 250
    log_every: int = 25
    checkpoint_minutes: float = 10.0
    threads: int = 2  # torch threads of each training process
    processes: int = 1  # processes sharing each step (data parallel on the CPU: each takes a batch, the
    #                     gradients are averaged), so the batch is ``processes`` x the stage's
    device: str = "cpu"  # auto, cpu, cuda, cuda:N
    precision: str = "fp32"  # fp32, bf16 or fp16 (autocast; the parameters stay float32)
    blur: BlurConfig = field(default_factory=BlurConfig)

    def __post_init__(self) -> None:
        if self.size not in PRIOR_CONFIGS:
            raise UsageError(f"unknown model size {self.size!r}; choose from {', '.join(PRIOR_CONFIGS)}")
        bad = [s for s, _ in self.mix if s not in SOURCES]
        if bad or not any(w > 0 for _, w in self.mix):
            raise UsageError(f"mix: sources are {', '.join(SOURCES)}, with some weight above 0")
        if self.processes < 1 or self.threads < 1:
            raise UsageError("processes and threads must be >= 1")
        check_precision(self.precision)
        if self.steps < 1 or self.store < 32 or self.store % 16 or not self.stages:
            raise UsageError("steps must be >= 1, store a multiple of 16 from 32, and there must be a stage")
        held = {s for s, w in self.mix if w > 0}
        for st in self.stages:
            missing = [s for s, w in st.mix if w > 0 and s not in held]
            if missing:
                raise UsageError(f"stage {st.name}: the cache's mix has no {', '.join(missing)} windows")

    def model_config(self) -> PriorConfig:
        """The size's network config, with the recipe's attention settings where it gives them."""
        given = (("view_attention", self.view_attention), ("local_attention", self.local_attention),
                 ("restore_motion", self.restore_motion), ("head_scale", self.head_scale),
                 ("refine_scale", self.refine_scale), ("blocks", self.blocks))
        changes = {k: v for k, v in given if v is not None}
        try:
            return dataclasses.replace(PRIOR_CONFIGS[self.size], **changes)
        except ValueError as err:
            raise UsageError(f"size {self.size}: {err}") from None

    def stage(self, step: int) -> Stage:
        for st in self.stages:
            if st.until == 0 or step < st.until:
                return st
        return self.stages[-1]

    def cache_settings(self) -> CacheSettings:
        return CacheSettings(footage=tuple(self.footage), holdout=tuple(self.holdout),
                             holdout_frames=self.holdout_frames, max_side=self.max_side, max_frames=self.max_frames,
                             crop=self.store, mix=self.mix, blur=self.blur, shard=self.shard,
                             synthetic_textures=self.synthetic_textures)

    @property
    def cache_folder(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "cache"


def load_prior_recipe(path: str | Path, overrides: dict[str, Any] | None = None,
                      data: str | Path | None = None) -> PriorTrainConfig:
    """A recipe file: top-level ``arch = "prior"``, the config's fields, a ``[blur]`` and a ``[mix]`` table (the
    sources the window cache holds) and the curriculum as ``[[stages]]`` (each with its own ``mix``). Paths are
    relative to the recipe's folder; ``{data}`` is ``data``, by default ``../shared/data`` beside the repository
    the recipe is in."""
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
    if isinstance(data.get("blocks"), list):
        data["blocks"] = tuple(data["blocks"])
    blur = dict(data.pop("blur", {}))
    for key in ("strides", "exposure", "shake_length", "length"):
        if key in blur:
            blur[key] = tuple(blur[key])
    names = {f.name for f in fields(PriorTrainConfig)}
    unknown = set(data) - names
    if unknown:
        raise UsageError(f"recipe {path}: unknown fields {sorted(unknown)}")
    data.setdefault("name", path.stem)
    data.setdefault("out", str(Path("runs") / data["name"]))
    try:
        if "stages" in data:
            stages = []
            for st in data["stages"]:
                st = dict(st)
                if "mix" in st:
                    st["mix"] = tuple((str(k), float(v)) for k, v in dict(st["mix"]).items())
                stages.append(Stage(**st))
            data["stages"] = tuple(stages)
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


def outputs(model: PriorNet, batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The network on a batch as the engine runs it: interp-mode batches (sharp inputs) keep their key
    frames as decoded, so only their in-between frames are made; batches without target times make the
    key frame only."""
    frames = batch.inputs
    feats = window_features(model.encode, frames)
    return model.restore([frames[:, i] for i in range(4)], feats, batch.times, batch.prior,
                         with_key=not batch.sharp, sharp=batch.sharp)


def image_loss(pred: torch.Tensor, target: torch.Tensor, cfg: PriorTrainConfig) -> torch.Tensor:
    loss = charbonnier(pred, target) + cfg.laplacian * laplacian_loss(pred, target)
    if cfg.fft:
        loss = loss + cfg.fft * fft_loss(pred, target)
    return loss


def restore_stage_key(model: PriorNet, batch: Batch) -> torch.Tensor:
    """The key frame as the network makes it, with the motion part (encoder, pair correction) held fixed: in
    the restore stage only the restoration path learns, and a step costs little more than that path."""
    frames = [batch.inputs[:, i] for i in range(3)]
    with torch.no_grad():
        feats = window_features(model.encode, batch.inputs[:, :3])
        m01 = model.pair(feats[1][EIGHTH], feats[2][EIGHTH], batch.prior.f01)
    return model.restorer(*model.key_inputs(frames, feats, batch.prior, m01))


def key_loss(key: torch.Tensor, batch: Batch, cfg: PriorTrainConfig) -> torch.Tensor:
    """The key frame's loss; with ``blur_weight``, more on the pixels its blur changed (see
    :func:`~vidrestore.train.losses.blur_mask`)."""
    loss = image_loss(key, batch.key, cfg)
    if cfg.blur_weight:
        mask = blur_mask(batch.inputs[:, 1], batch.key)
        loss = loss + cfg.blur_weight * masked_charbonnier(key, batch.key, mask)
    return loss


def loss_of(model: PriorNet, batch: Batch, cfg: PriorTrainConfig, stage: Stage) -> torch.Tensor:
    if stage.name == "restore":
        return stage.key_weight * key_loss(restore_stage_key(model, batch), batch, cfg)
    key, inter = outputs(model, batch)
    loss = torch.zeros((), dtype=torch.float32, device=batch.key.device)
    if key is not None:
        loss = loss + stage.key_weight * key_loss(key, batch, cfg)
    if inter.shape[1]:
        loss = loss + image_loss(inter, batch.inter, cfg)
    return loss


def replicate_neighbours(batch: Batch, prob: float, rng: np.random.Generator) -> Batch:
    """Some items get their key frame as both neighbours, with no motion: a window at the ends of a video or
    at a cut, where the network is a single-frame deblurrer."""
    pick = torch.from_numpy(rng.random(batch.inputs.shape[0]) < prob)
    if not bool(pick.any()):
        return batch
    inputs = batch.inputs.clone()
    centre = inputs[pick, 1]
    for i in (0, 2, 3):
        inputs[pick, i] = centre
    flows = [f.clone() for f in batch.prior]
    for f in flows:
        f[pick] = 0
    return dataclasses.replace(batch, inputs=inputs, prior=PriorFlows(*flows))


def _mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float((pred.float().clamp(0, 1) - target.float()).square().mean())


def _db(mse: float) -> float:
    """PSNR of a mean squared error (the mean over a source's batches: sharp items, whose error is zero,
    do not dominate it as a mean of per-item PSNRs would)."""
    return round(10 * math.log10(1.0 / max(mse, 1e-10)), 3)


class Validator:
    """The cache's fixed validation windows (held-out frames, seeded synthetic scenes), scored against their
    floors: the input key frame, and the prior's warp-and-blend (the network as built, every correction zero)."""

    def __init__(self, windows: dict, config: PriorConfig, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        self.batches = [(s, b.to(device)) for s, b in validation_batches(windows)]
        # the real key frames alone (neighbours replicated, no motion): what deconvolution alone restores
        always = np.random.default_rng(0)
        self.batches += [("real.single", dataclasses.replace(replicate_neighbours(b, 1.0, always), times=b.times[:, :0],
                                                             inter=b.inter[:, :0]))
                         for s, b in self.batches if s == "real"]
        floor = PriorNet(config).to(device).eval()
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
    start = cfg.steps - cfg.decay
    if cfg.decay <= 0 or step < start:
        return cfg.lr
    p = (step - start) / max(1, cfg.decay)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def _param_groups(model: PriorNet, cfg: PriorTrainConfig) -> list[dict[str, Any]]:
    """Two groups: the restoration path (its own ``restore_lr_scale``: it makes images, and learns
    slowly at the rate that suits the flow corrections, whose units are pixels of motion), the rest."""
    restore = [p for p in model.restorer.parameters()]
    ids = {id(p) for p in restore}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": rest, "scale": 1.0}, {"params": restore, "scale": cfg.restore_lr_scale}]


# parts whose shapes follow the per-t scales (head_scale, refine_scale): a warm start into other scales leaves
# them as built (their last layers start at zero, so the network starts as the file's, less their corrections)
RESCALED_PARTS = ("flow_head.", "refiner.")


def warm_start(model: PriorNet, spec: str) -> dict[str, str]:
    """Copy the tensors of weights ``spec`` into ``model`` (parts the file lacks, such as attention blocks added
    since, stay as built: they start as the identity; so do the per-t parts where the scales differ). Returns
    the file's metadata."""
    tensors, meta = read_tensors(locate(spec)[0])
    own = model.state_dict()
    # a part with any tensor of another shape starts anew whole, not as a mix of the file's tensors and new ones
    reshaped = tuple(p for p in RESCALED_PARTS
                     if any(k.startswith(p) and k in own and own[k].shape != v.shape for k, v in tensors.items()))
    rescaled = {k for k in tensors if reshaped and k.startswith(reshaped)}
    bad = [k for k, v in tensors.items() if k not in rescaled and (k not in own or own[k].shape != v.shape)]
    if bad:
        raise UsageError(f"init {spec}: its tensors do not fit a {model.config.name} model ({bad[0]}, ...)")
    model.load_state_dict({k: v for k, v in tensors.items() if k not in rescaled}, strict=False)
    return meta


def _ema_update(ema: PriorNet, model: PriorNet, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def _fill_cache_to(cfg: PriorTrainConfig, cache: WindowCache, want: int, log: Callable[[str], None]) -> None:
    if len(cache.shards()) * cfg.shard >= want:
        return
    maker = WindowMaker(cfg.cache_settings(), threads=cfg.threads, log=log)
    g = torch.Generator().manual_seed(cfg.seed * 7919 + len(cache.shards()))
    fill(cache, maker, want, g, log=log)


def prepare_cache(cfg: PriorTrainConfig, log: Callable[[str], None] = print) -> tuple[WindowCache, dict]:
    """The run's window cache, (re)made for its settings, and its validation windows (made on first use)."""
    cache = WindowCache(cfg.cache_folder, cfg.cache_settings())
    if not cache.prepare():
        log(f"cache {cache.folder}: made anew for these settings ({cache.settings.fingerprint()})")
    sources = [s for s, w in cfg.mix if w > 0]
    if "real" in sources:
        sources.append("motion")  # the release checks' kind of blur, scored on its own
    return cache, ensure_validation(cache, sources, log=log)


def fill_cache(cfg: PriorTrainConfig, minutes: float | None, echo: Callable[[str], None] = print) -> int:
    """``vidrestore train --fill-cache``: fill the run's cache to ``cache_windows``, then keep replacing its
    oldest shards with fresh windows until ``minutes`` are spent (at a low priority: training comes first)."""
    try:
        os.nice(10)
    except OSError:
        pass
    threads.apply(1, passive=False, kept=threads.TRAIN_KEPT)
    cache, _ = prepare_cache(cfg, echo)
    maker = WindowMaker(cfg.cache_settings(), threads=1, log=echo)
    g = torch.Generator().manual_seed(int(time.time()))
    return fill(cache, maker, cfg.cache_windows, g, minutes=minutes, keep_going=minutes is not None, log=echo)


class TrainingClock:
    """Seconds of training: wall time less the time the process was stopped (SIGSTOP, a suspended laptop), so
    a run paused while a benchmark runs does not count the pause as training hours. A thread ticks every
    ``tick`` seconds; a gap of more than ``3 * tick`` between ticks was a pause."""

    def __init__(self, tick: float = 1.0) -> None:
        self.tick = tick
        self.start = time.monotonic()
        self.paused = 0.0
        self._last = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidrestore-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            gap = now - self._last
            if gap > 3 * self.tick:
                self.paused += gap - self.tick
            self._last = now

    def seconds(self) -> float:
        now = time.monotonic()
        gap = now - self._last
        current = gap - self.tick if gap > 3 * self.tick else 0.0  # a pause the ticker has not seen end yet
        return max(0.0, now - self.start - self.paused - current)

    def close(self) -> None:
        self._stop.set()


def _peer(cfg: PriorTrainConfig, rank: int, rendezvous: str) -> None:
    """A data-parallel peer process (rank > 0): trains in step with rank 0, logs and saves nothing."""
    try:
        train_prior(cfg, echo=lambda text: None, rank=rank, rendezvous=rendezvous)
    except KeyboardInterrupt:
        pass
    except RuntimeError:  # rank 0 ended (Ctrl-C, its budget): the collective fails here, nothing to save
        pass


class _Peers:
    """Ranks 1..N-1 of a data-parallel run, started from rank 0 (spawned: a clean interpreter each)."""

    def __init__(self, cfg: PriorTrainConfig, rendezvous: str) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.procs = [ctx.Process(target=_peer, args=(cfg, rank, rendezvous), daemon=True)
                      for rank in range(1, cfg.processes)]
        for proc in self.procs:
            proc.start()

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=20)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=10)


def _average_gradients(model: PriorNet, world: int, stop: bool) -> bool:
    """All ranks' gradients averaged in place (one flat all-reduce over every parameter: a part one rank's batch
    did not use, such as the refiner beside a blurred batch, counts as zero there and keeps no gradient where no
    rank used it), with rank 0's wish to stop after this step riding along; returns whether a rank wants to."""
    import torch.distributed as dist

    params = list(model.parameters())
    used = [p.grad is not None for p in params]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
                     + [torch.tensor([float(u) for u in used] + [1.0 if stop else 0.0])])
    dist.all_reduce(flat)
    offset = 0
    flags = flat[-len(params) - 1:]
    for i, p in enumerate(params):
        n = p.numel()
        if flags[i] > 0:
            p.grad = flat[offset:offset + n].view_as(p).div(world)
        else:
            p.grad = None
        offset += n
    return bool(flags[-1] > 0)


def train_prior(cfg: PriorTrainConfig, echo: Callable[[str], None] = print, rank: int = 0,
                rendezvous: str | None = None) -> dict[str, Any]:
    """Run (or continue) a recipe; returns the last validation and the export path. With ``cfg.processes``
    above 1, this process is rank 0 (it validates, logs, checkpoints and exports) and starts the others."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.jsonl"
    world = cfg.processes
    lead = rank == 0

    def log(kind: str, text: str, **record: Any) -> None:
        if not lead:
            return
        echo(text)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "time": round(time.time(), 3), **record}, sort_keys=True) + "\n")

    threads.apply(cfg.threads, passive=False, kept=threads.TRAIN_KEPT)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.precision, device)
    model = PriorNet(cfg.model_config()).to(device)
    opt = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    step, seconds, history = 0, 0.0, []
    base = {"steps": 0, "seconds": 0.0, "from": None}  # training before this run (its warm start)
    ema = copy.deepcopy(model).eval()
    ckpt = find_checkpoint(out)
    if ckpt is not None:
        state, _ = load_checkpoint(ckpt, model, opt)
        step, seconds, history = int(state["step"]), float(state["seconds"]), list(state.get("val", []))
        base = state.get("base", base)
        for group, fresh in zip(opt.param_groups, _param_groups(model, cfg)):
            group["scale"] = fresh["scale"]  # the recipe's, not the checkpoint's
        ema_file = ckpt / EMA_FILE
        ema.load_state_dict(load_file(str(ema_file)) if ema_file.is_file() else model.state_dict())
        log("resume", f"resumed {cfg.name} at step {step} ({seconds / 60:.1f} min trained)", step=step)
    elif cfg.init:
        meta = warm_start(model, cfg.init)
        ema.load_state_dict(model.state_dict())
        base = {"steps": int(meta.get("train.steps", "0") or 0), "seconds": float(meta.get("train.seconds", "0") or 0),
                "from": cfg.init}
        log("init", f"warm start from {cfg.init} ({base['steps']} steps, {base['seconds'] / 3600:.2f} h before)",
            base=base)
    if lead:
        cache, val_windows = prepare_cache(cfg, lambda text: log("cache", text))
        _fill_cache_to(cfg, cache, cfg.cache_min, lambda text: log("cache", text))
        validator = Validator(val_windows, cfg.model_config(), device, dtype)
        log("floor", f"floor (input key frame, prior warp-and-blend): {validator.floor}", val=validator.floor)
        if not history:
            val = validator(ema)
            history.append({"step": step, "hours": round(seconds / 3600, 4), **val})
            log("val", f"val at {step}: {val}", step=step, hours=round(seconds / 3600, 4), val=val)
    else:
        cache = WindowCache(cfg.cache_folder, cfg.cache_settings())  # made by rank 0 before it started this one
    peers = None
    if world > 1:
        import torch.distributed as dist

        if lead:
            rendezvous = str(out / f".rendezvous-{os.getpid()}")
            Path(rendezvous).unlink(missing_ok=True)
            peers = _Peers(cfg, rendezvous)
            log("peers", f"data parallel: {world} processes of {cfg.threads} thread(s), batch {world} x the stage's")
        dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
        for p in model.parameters():  # every rank starts from rank 0's weights
            dist.broadcast(p.data, 0)
    batches = CachedBatches(cache, seed=cfg.seed * 1_000_003 + step + 7919 * rank)
    rng = np.random.default_rng(cfg.seed * 7 + step + 104_729 * rank)
    model.train()
    clock = TrainingClock()
    start = time.monotonic()
    last_ckpt = start
    budget = None if cfg.minutes is None else cfg.minutes * 60

    def checkpoint(run_seconds: float | None = None) -> None:
        if not lead:
            return
        total = seconds + (clock.seconds() if run_seconds is None else run_seconds)
        path = save_checkpoint(out, model, opt, {}, {"step": step, "seconds": total, "val": history, "base": base,
                                                     "config": _jsonable(cfg)})
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in ema.state_dict().items()},
                  str(path / EMA_FILE))

    running, count, pixels, t_log = 0.0, 0, 0, clock.seconds()
    def next_batch(at: int) -> tuple[Stage, Batch]:
        stage = cfg.stage(base["steps"] + at)  # the curriculum counts every step, a warm start's included
        mix = [(s, w) for s, w in stage.mix if w > 0 and batches.windows(s)]  # what the cache holds so far
        if not mix:
            raise UsageError(f"stage {stage.name}: the cache holds none of its sources yet")
        sources = [s for s, _ in mix]
        weights = np.array([w for _, w in mix], dtype=np.float64)
        source = sources[int(rng.choice(len(sources), p=weights / weights.sum()))]
        batch = batches.next(source, stage.batch, stage.crop, stage.targets)
        if stage.name == "restore":
            batch = replicate_neighbours(batch, stage.replicate_prob, rng)
        return stage, batch

    # the next batch is made in a thread while the step computes (it reads and copies arrays: little CPU). Its
    # torch operations run on that thread alone: an OpenMP team of its own would make more OpenMP threads than
    # cores, and libgomp then puts idle threads to sleep after every parallel region instead of letting them
    # spin, which made each training step 1.7x slower on 2 cores
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidrestore-batches",
                                  initializer=torch.set_num_threads, initargs=(1,))
    pending = prefetch.submit(next_batch, step)
    try:
        while step < cfg.steps and (budget is None or world > 1 or clock.seconds() < budget):
            stage, batch = pending.result()
            pending = prefetch.submit(next_batch, step + 1)
            batch = batch.to(device)
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step) * group["scale"]
            with autocast(device, dtype):
                loss = loss_of(model, batch, cfg, stage)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            stop = False
            if world > 1:
                stop = _average_gradients(model, world, lead and budget is not None and clock.seconds() >= budget)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if lead:
                _ema_update(ema, model, cfg.ema if step >= cfg.warmup else 0.0)
            step += 1
            running += float(loss.detach())
            count += 1
            pixels += world * int(batch.inputs.shape[0]) * int(batch.inputs.shape[-1]) * int(batch.inputs.shape[-2])
            if stop:
                break
            if not lead:
                continue
            if step % cfg.log_every == 0:
                span = max(clock.seconds() - t_log, 1e-6)
                log("train", f"step {step} ({stage.name}): loss {running / count:.4f}, lr {_lr(cfg, step):.2e}, "
                    f"{count / span * 3600:.0f} steps/h, {pixels / span / 1e3:.0f} kpx/s, "
                    f"{(seconds + clock.seconds()) / 3600:.2f} h", step=step, loss=running / count,
                    stage=stage.name, steps_per_hour=count / span * 3600, pixels_per_second=pixels / span)
                running, count, pixels, t_log = 0.0, 0, 0, clock.seconds()
            if step % cfg.val_every == 0 or step == cfg.steps:
                hours = round((seconds + clock.seconds()) / 3600, 4)
                val = validator(ema)
                history.append({"step": step, "hours": hours, **val})
                log("val", f"val at {step}: {val}", step=step, hours=hours, val=val)
                t_log = clock.seconds()  # validation is not training time in the speed figures
                running, count, pixels = 0.0, 0, 0
            if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)
        run_seconds = clock.seconds()
        clock.close()
        if world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
        if peers is not None:
            peers.close()
            Path(str(rendezvous)).unlink(missing_ok=True)
        if lead:
            checkpoint(run_seconds)
            total = seconds + run_seconds
            export = out / "final.safetensors"
            meta = {"train.recipe": cfg.name, "train.steps": str(base["steps"] + step),
                    "train.seconds": str(round(base["seconds"] + total)),
                    "train.run_steps": str(step), "train.run_seconds": str(round(total)),
                    "train.hardware": _hardware(device, cfg.threads, world),
                    "train.config": json.dumps(_jsonable(cfg), sort_keys=True)}
            if base.get("from"):
                meta["train.init"] = str(base["from"])
            save_weights(ema, export, meta)
            log("export", f"step {step}, {total / 60:.1f} min trained in this run: {export}", step=step)
    if not lead:
        return {"step": step}
    return {"step": step, "finished": step >= cfg.steps, "export": str(export),
            "val": history[-1] if history else {}, "floor": validator.floor}


def _hardware(device: torch.device, threads: int, processes: int = 1) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = f"{platform.machine()} CPU, {threads} thread{'s' if threads > 1 else ''}"
    return cpu if processes == 1 else f"{cpu} x {processes} processes"


def _jsonable(cfg: PriorTrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg), default=str))
