"""Test-time adaptation (``enhance --adapt``): fine-tune the network on the input video's own frames, for a bounded
time, before enhancing it.

The video supervises itself, with the training code's windows and losses (:mod:`.prior_data`, :mod:`.batches`,
:mod:`.prior_loop`):

- **interp**: windows of every other frame at the input's own rate, the frame between them the target
  (F(i), F(i+2) make F(i+1));
- **deblur** and **joint**: the video's sharpest patches (local variance of the Laplacian), blurred again along
  their own motion (DIS flow over a drawn exposure) and by straight or shaken kernels, the sharp patch the
  target of the key frame; in joint mode the frame between two such inputs (every other frame) is a target too,
  so joint adaptation learns from both.

Some of the video (its last fifth, as whole windows) is held out. The adapted network is used only where it
scores better than the network it started from on those held-out windows; otherwise the base network enhances
the video and a note says so. Nothing is written unless asked (``save``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from vidrestore.model.prior_net import PriorNet
from vidrestore.runtime import autocast
from vidrestore.train.batches import make_batch, validation_batches
from vidrestore.train.losses import charbonnier, laplacian_loss
from vidrestore.train.prior_data import Batch, BlurConfig, RealSampler, Windows, split_shots
from vidrestore.train.prior_loop import outputs



def blur_for(mode: str) -> BlurConfig:
    """The windows of a mode and the blur given again to the video's sharpest patches: its own motion (the flow
    to its neighbours) smeared over a drawn length, as `vidrestore eval --blur-length` blurs, and in part
    straight or shaken kernels of one length for every view. Deblur windows are consecutive frames (key frames
    only); interp and joint windows take every other frame, the one between the target."""
    stride = 1 if mode == "deblur" else 2
    return BlurConfig(strides=(stride,), sharp_prob=0.1, temporal_prob=1.0, exposure=(0.3, 1.0), shake_prob=0.5,
                      shake_length=(2.0, 24.0), lucky_prob=0.0, noise=0.005, shared_shake_prob=1.0,
                      length_prob=0.7, length=(4.0, 32.0), max_exposure=float(stride), line_prob=0.5)


def min_frames(mode: str) -> int:
    """The fewest frames a video needs for adaptation: a window's span (and two) to train on and to hold out."""
    blur = blur_for(mode)
    return 2 * (RealSampler._span(blur.strides[0]) + 2)


@dataclass(frozen=True)
class AdaptConfig:
    """How adaptation trains (measured choices; see the model card)."""

    crop: int = 128  # training crops, px square
    batch: int = 4
    lr: float = 3e-5  # AdamW, constant (2e-4 and 5e-5 lost more on the deblur checks)
    val_crop: int = 192
    windows: int = 48  # training windows made per source
    val_windows: int = 12  # held-out windows per source
    heldout: float = 0.2  # the share of the video (its end) held out
    min_gain_db: float = 0.01  # the held-out score must beat the base's by this much
    max_loss_db: float = 0.05  # and no source may fall more than this below the base's
    max_frames: int = 300  # frames of the video read for adaptation (its first ones)
    max_side: int = 960  # frames larger than this are reduced for adaptation
    seed: int = 0
    data_share: float = 0.3  # of the budget at most for making training windows (8 of them at least)


@dataclass(frozen=True)
class AdaptProgress:
    """Where an adaptation stands: ``phase`` "data", "train" or "done"; scores are held-out PSNR (dB), the mean
    over the sources."""

    phase: str
    step: int
    seconds: float
    budget: float
    base_db: float | None = None
    current_db: float | None = None


@dataclass(frozen=True)
class AdaptResult:
    model: PriorNet  # the adapted network if used, else the base one
    used: bool
    reason: str  # one line for the run's note
    steps: int
    seconds: float
    base: dict[str, float]  # held-out PSNR per source, base network
    adapted: dict[str, float]  # the same, adapted network


CHECK_STEPS = 20  # steps between scorings of the held-out windows


def auto_budget(duration_s: float) -> float:
    """``--adapt auto``: 6 s of adaptation per second of video, at least 30 s and at most 120 s."""
    return float(min(120.0, max(30.0, 6.0 * duration_s)))


def prepare_frames(frames: Sequence[np.ndarray], cfg: AdaptConfig) -> list[np.ndarray]:
    """The video's frames as the adaptation holds them: 8-bit RGB, the longer side at most ``cfg.max_side``."""
    out = []
    for f in list(frames)[:cfg.max_frames]:
        if f.dtype != np.uint8:
            f = (f >> 8).astype(np.uint8)
        h, w = f.shape[:2]
        s = cfg.max_side / max(h, w)
        if s < 1:
            f = cv2.resize(f, (max(16, round(w * s)), max(16, round(h * s))), interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(f))
    return out


class _SharpSampler(RealSampler):
    """Windows whose key frame's crop lies where the video is sharpest: placed by the local variance of the
    Laplacian of each frame, drawn in proportion to it (the sharper a place, the likelier)."""

    def __init__(self, videos: Sequence[torch.Tensor], blur: BlurConfig, threads: int) -> None:
        super().__init__(videos, blur, threads)
        self.maps = [_sharpness_maps(v.numpy()) for v in self.videos]
        self._weights: dict[tuple[int, int, int, int], torch.Tensor] = {}

    def _placement_weights(self, index: int, span: int, size: int, key: int) -> torch.Tensor:
        """The draw's weights [first, y, x] on the cell grid: the squared mean sharpness of the crop's cells at
        its key frame, summing to 1. The same for every window of one video, crop size and stride: made once."""
        n, h, w = self.videos[index].shape[:3]
        maps = self.maps[index]  # [N, h/32, w/32]
        ys, xs = max(1, (h - size) // _CELL + 1), max(1, (w - size) // _CELL + 1)
        firsts = n - span + 1
        score = np.zeros((firsts, ys, xs), np.float64)
        k = max(1, size // _CELL)
        for f in range(firsts):
            m = maps[f + key]
            for y in range(ys):
                for x in range(xs):
                    score[f, y, x] = m[y:y + k, x:x + k].mean()
        p = torch.from_numpy((score + 1e-6) ** 2)
        return p / p.sum()

    def place(self, index: int, span: int, size: int, key: int, generator: torch.Generator, tries: int = 1,
              stride: int = 1) -> tuple[int, int, int]:
        """Drawn by sharpness (``tries`` and ``stride`` are not used: the choice is already made)."""
        _, h, w = self.videos[index].shape[:3]
        ids = (index, span, size, key)
        if ids not in self._weights:
            self._weights[ids] = self._placement_weights(*ids)
        weights = self._weights[ids]
        pick = int(torch.multinomial(weights.reshape(-1), 1, generator=generator))
        f, y, x = (int(i) for i in np.unravel_index(pick, tuple(weights.shape)))
        return f, min(y * _CELL, h - size), min(x * _CELL, w - size)


_CELL = 32


def _sharpness_maps(video: np.ndarray) -> np.ndarray:
    """Per frame, the variance of the Laplacian of its grey image in cells of ``_CELL`` px: [N, H/32, W/32]."""
    n, h, w = video.shape[:3]
    gh, gw = h // _CELL, w // _CELL
    out = np.zeros((n, max(1, gh), max(1, gw)), np.float32)
    for i in range(n):
        grey = cv2.cvtColor(video[i], cv2.COLOR_RGB2GRAY).astype(np.float32)
        lap = cv2.Laplacian(grey, cv2.CV_32F)
        if gh and gw:
            cells = lap[:gh * _CELL, :gw * _CELL].reshape(gh, _CELL, gw, _CELL)
            out[i] = cells.var(axis=(1, 3))
        else:
            out[i] = lap.var()
    return out


def make_windows(frames: list[np.ndarray], mode: str, cfg: AdaptConfig, threads: int,
                 deadline: float = math.inf) -> tuple[Windows, Windows]:
    """Training windows from the first part of the video and held-out windows from its end (at least a window's
    span each; shots cut at scene cuts): the held-out ones first, then training windows 8 at a time until
    ``cfg.windows`` or ``deadline`` (``time.perf_counter()``; 8 at least). ValueError where the video is too
    short."""
    need = min_frames(mode) // 2
    cut = min(len(frames) - need, int(round(len(frames) * (1 - cfg.heldout))))
    if cut < need:
        raise ValueError(f"{len(frames)} frames, fewer than the {2 * need} adaptation needs")
    video = torch.from_numpy(np.stack(frames))
    blur = blur_for(mode)
    sharp = mode == "interp"
    g = torch.Generator().manual_seed(cfg.seed)
    out = []
    for part, n, crop, until in ((video[cut:], cfg.val_windows, cfg.val_crop, math.inf),
                                 (video[:cut], cfg.windows, cfg.crop, deadline)):
        shots = split_shots(part)
        sampler = RealSampler(shots, blur, threads) if sharp else _SharpSampler(shots, blur, threads)
        parts: list[Windows] = []
        while sum(len(p) for p in parts) < n and (not parts or time.perf_counter() < until):
            parts.append(sampler.sample(min(8, n - sum(len(p) for p in parts)), crop, g, sharp=sharp))
        out.append(Windows.concat(parts))
    return out[1], out[0]


def _for_mode(b: Batch, mode: str) -> Batch:
    """Deblur mode makes key frames only: no frames between."""
    return dataclasses.replace(b, times=b.times[:, :0], inter=b.inter[:, :0]) if mode == "deblur" else b


def _loss(model: PriorNet, batch: Batch) -> torch.Tensor:
    key, inter = outputs(model, batch)
    loss = torch.zeros((), device=batch.key.device)
    if key is not None:
        loss = loss + 2.0 * (charbonnier(key, batch.key) + laplacian_loss(key, batch.key))
    if inter.shape[1]:
        loss = loss + charbonnier(inter, batch.inter) + laplacian_loss(inter, batch.inter)
    return loss


@torch.no_grad()
def score(model: PriorNet, batches: list[tuple[str, Batch]], device: torch.device, mode: str) -> dict[str, float]:
    """Held-out PSNR (dB) per source of what the mode makes: deblur the key frames, interp the frames between,
    joint both."""
    was = model.training
    model.eval()
    acc: dict[str, list[float]] = {}
    try:
        for source, b in batches:
            key, inter = outputs(model, b)
            if key is not None and mode != "interp":
                acc.setdefault(f"{source}.key", []).append(float((key.clamp(0, 1) - b.key).square().mean()))
            if inter.shape[1] and mode != "deblur":
                acc.setdefault(f"{source}.inter", []).append(float((inter.clamp(0, 1) - b.inter).square().mean()))
    finally:
        model.train(was)
    return {k: 10 * math.log10(1 / max(sum(v) / len(v), 1e-10)) for k, v in acc.items()}


def _mean(d: dict[str, float]) -> float:
    return sum(d.values()) / max(1, len(d))


def adapt(model: PriorNet, frames: Sequence[np.ndarray], mode: str, budget: float, device: torch.device,
          cfg: AdaptConfig = AdaptConfig(), threads: int = 1,
          progress: Callable[[AdaptProgress], None] | None = None) -> AdaptResult:
    """Fine-tune a copy of ``model`` on ``frames`` (the video's, HxWx3 RGB) for about ``budget`` seconds in
    all, and keep it only if it scores better on the held-out end of the video. ``model`` is never changed."""
    t0 = time.perf_counter()
    report = progress or (lambda p: None)
    report(AdaptProgress("data", 0, 0.0, budget))
    source = "interp" if mode == "interp" else "real"
    try:
        train, held = make_windows(prepare_frames(frames, cfg), mode, cfg, threads,
                                   deadline=t0 + cfg.data_share * budget)
    except ValueError as err:  # too short, or no shot long enough for a window
        return AdaptResult(model, False, f"not adapted: this video is too short to adapt on ({err})", 0,
                           time.perf_counter() - t0, {}, {})
    val = [(s, _for_mode(b, mode).to(device)) for s, b in validation_batches({source: held}, batch=4)]
    base = score(model, val, device, mode)
    tuned = copy.deepcopy(model).to(device).train()
    params = [p for p in tuned.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    best, best_scores, best_step = copy.deepcopy(tuned.state_dict()), base, 0
    report(AdaptProgress("train", 0, time.perf_counter() - t0, budget, _mean(base), _mean(base)))
    spend = budget * 0.9  # the last scoring and the choice fit in the rest
    checked, scored = time.perf_counter(), 0  # when, and after which step, the held-out windows were scored

    def check() -> None:
        nonlocal best, best_scores, best_step, checked, scored
        now = score(tuned, val, device, mode)
        if _mean(now) > _mean(best_scores):
            best, best_scores, best_step = copy.deepcopy(tuned.state_dict()), now, step
        checked, scored = time.perf_counter(), step
        report(AdaptProgress("train", step, checked - t0, budget, _mean(base), _mean(now)))

    while time.perf_counter() - t0 < spend:
        picks = [(train, int(i)) for i in rng.integers(len(train), size=cfg.batch)]
        b = _for_mode(make_batch(picks, cfg.crop, 0 if mode == "deblur" else 1, rng, source), mode).to(device)
        with autocast(device, torch.float32):
            loss = _loss(tuned, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        # scored every CHECK_STEPS steps, or a sixth of the budget at the latest, and after the last step
        if step % CHECK_STEPS == 0 or time.perf_counter() - checked > budget / 6:
            check()
    if step > scored:
        check()
    tuned.load_state_dict(best)
    tuned.eval()
    gain = _mean(best_scores) - _mean(base)
    worst = min((best_scores[k] - base[k] for k in base), default=0.0)
    seconds = time.perf_counter() - t0
    report(AdaptProgress("done", step, seconds, budget, _mean(base), _mean(best_scores)))
    if best_step and gain >= cfg.min_gain_db and worst >= -cfg.max_loss_db:
        return AdaptResult(tuned, True, f"adapted to this video in {seconds:.0f} s ({best_step} steps): "
                           f"{gain:+.2f} dB on its held-out frames", best_step, seconds, base, best_scores)
    return AdaptResult(model, False, f"adaptation ({step} steps, {seconds:.0f} s) did not improve on the network's "
                       f"held-out frames of this video ({gain:+.2f} dB): the base network is used", step, seconds,
                       base, best_scores)


def read_for_adaptation(reader, cfg: AdaptConfig = AdaptConfig()) -> list[np.ndarray]:
    """The first ``cfg.max_frames`` frames of a run's reader, as :func:`prepare_frames` holds them (each reduced
    as it is read, so a large video never sits whole in memory)."""
    frames: list[np.ndarray] = []
    with reader:
        for decoded in reader:
            frames += prepare_frames([decoded.rgb], cfg)
            if len(frames) >= cfg.max_frames:
                break
    return frames


__all__ = ["AdaptConfig", "AdaptProgress", "AdaptResult", "adapt", "auto_budget", "blur_for", "min_frames",
           "score", "make_windows", "prepare_frames", "read_for_adaptation"]

