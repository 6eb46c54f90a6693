"""Training batches for the flow-prior network (:mod:`vidrestore.model.prior_net`), from three sources:

- ``real``: real ordinary-rate footage. A batch takes every ``stride``-th frame as the low-rate input and
  the frames between as exact in-between targets (self-supervision: any 24-30 fps clip is training
  data). Each input frame is blurred as cameras blur: :func:`~vidrestore.synth.blur.temporal_blur` over a
  random exposure (the scene's own motion, REDS-style), camera-shake kernels, both, or neither (sharp
  input). Blur varies from frame to frame, as in real video.
- ``interp``: the same footage kept sharp, for the interp-mode path (``sharp=True``).
- ``synthetic``: the project's rendered scenes (:mod:`vidrestore.synth.scenes`), exact 8x truth.

Every batch carries the prior the network will see at run time: DIS flows computed on the 8-bit
inputs, as :mod:`vidrestore.prior` does on decoded video.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vidrestore.frames import quantize
from vidrestore.model.prior_net import PriorFlows
from vidrestore.flow import dis_flow
from vidrestore.synth.blur import apply_kernels, motion_length, shake_kernels, temporal_blur
from vidrestore.synth.footage import decode_video, list_videos
from vidrestore.synth.scenes import SceneConfig, render_batch
from vidrestore.synth.textures import TextureBank


@dataclass(frozen=True)
class Batch:
    """Images in [0, 1] on the CPU."""

    inputs: torch.Tensor  # [B, 4, 3, H, W] F(i-1), F(i), F(i+1), F(i+2) as the network gets them
    key: torch.Tensor  # [B, 3, H, W] sharp F(i)
    inter: torch.Tensor  # [B, T, 3, H, W] sharp frames at i + times
    times: torch.Tensor  # [T]
    prior: PriorFlows
    sharp: bool  # the interp-mode path (inputs known sharp)
    source: str

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.inputs.to(device), self.key.to(device), self.inter.to(device), self.times.to(device),
                     PriorFlows(*(f.to(device) for f in self.prior)), self.sharp, self.source)


@dataclass(frozen=True)
class BlurConfig:
    """How ``real`` batches are blurred (lengths in pixels of the crop's resolution)."""

    strides: tuple[int, ...] = (2, 2, 3, 4)  # drawn per batch: the input takes every stride-th frame
    sharp_prob: float = 0.2  # an item whose inputs stay sharp (the restoration must stay invisible)
    temporal_prob: float = 0.6  # an item blurred over its exposure by the scene's motion
    exposure: tuple[float, float] = (0.3, 1.0)  # of the input frame interval (stride source frames)
    shake_prob: float = 0.5  # an item (also) blurred by camera shake
    shake_length: tuple[float, float] = (2.0, 32.0)  # px; 5-40 px at 720p is 2.5-20 at 360p, and the
    #                                                  evaluation's longest blur is 32 px at 640x360
    lucky_prob: float = 0.2  # per input frame of a blurred item: this frame is sharp(er) (no shake)
    noise: float = 0.01  # max std of Gaussian noise (then rounded to 8 bits)
    # A steady camera motion blurs consecutive frames alike: the views of such an item agree, and only
    # deconvolution restores it (where views differ, the sharpest one can be borrowed instead)
    shared_shake_prob: float = 0.0  # a shaken item's frames all take one kernel (and no lucky frame)
    # Fast motion: an item blurred by the scene's motion over the exposure that smears its moving parts a drawn
    # length (as `vidrestore eval --blur-length` blurs), up to ``max_exposure`` source frames
    length_prob: float = 0.0  # of the temporally blurred items
    length: tuple[float, float] = (4.0, 40.0)  # px
    max_exposure: float = 8.0  # source frames (and at most the input frame interval: the stride)
    line_prob: float = 0.0  # a shaken item's kernels are straight lines (a pan), not a hand's curled path
    # Where the blur is: most crops of a frame barely move (a third of them less than 2 px between inputs), so
    # the scene's own motion blurs little of what is trained on. A window's crop is, with this probability, the
    # one of ``motion_tries`` drawn whose key frame differs most from the next input (training windows only:
    # validation crops stay uniform, as the whole frames of the checks are)
    motion_crops: float = 0.0
    motion_tries: int = 4


def load_footage(paths: Sequence[str | Path], max_side: int, skip_frames: Sequence[int] | int = 0,
                 min_frames: int = 12, max_frames: int | None = None) -> list[torch.Tensor]:
    """Videos decoded whole into uint8 [N, H, W, 3] tensors (longer side at most ``max_side``, at most
    ``max_frames`` each), their first ``skip_frames`` dropped (the frames an evaluation scores), and cut
    into shots at hard cuts (a window across a cut has no true in-between frames)."""
    skips = [skip_frames] * len(paths) if isinstance(skip_frames, int) else list(skip_frames)
    shots = []
    for path, skip in zip(paths, skips):
        v = decode_video(path, max_side=max_side, skip_frames=skip, max_frames=max_frames)
        shots += [s for s in split_shots(v) if s.shape[0] >= min_frames]
    return shots


def split_shots(video: torch.Tensor, threshold: float = 0.12) -> list[torch.Tensor]:
    """``video`` [N, H, W, 3] uint8 cut where consecutive frames differ by more than ``threshold`` (mean
    absolute difference of 1/8-size grey images, in [0, 1]) and by 4x the clip's median difference."""
    if video.shape[0] < 2:
        return [video]
    small = video[:, ::8, ::8].float().mean(dim=-1) / 255
    diff = (small[1:] - small[:-1]).abs().mean(dim=(1, 2))
    cuts = ((diff > threshold) & (diff > 4 * diff.median())).nonzero().flatten().tolist()
    bounds = [0, *[c + 1 for c in cuts], video.shape[0]]
    return [video[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def footage_paths(folders: Sequence[str | Path]) -> list[Path]:
    """The videos of ``folders`` and their sub-folders."""
    out: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            out.append(folder)
            continue
        for sub in sorted([folder, *[p for p in folder.rglob("*") if p.is_dir()]]):
            try:
                out += list_videos(sub)
            except Exception:  # a folder without videos
                continue
    return out


class RealSampler:
    """``real`` and ``interp`` windows cut from footage in memory."""

    def __init__(self, videos: Sequence[torch.Tensor], blur: BlurConfig = BlurConfig(), threads: int = 2) -> None:
        self.videos = [v for v in videos if v.shape[0] >= self._span(min(blur.strides)) + 2]
        if not self.videos:
            raise ValueError("no video is long enough for training windows")
        self.blur = blur
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))
        lengths = torch.tensor([float(v.shape[0]) for v in self.videos])
        weights = lengths.sqrt()  # long videos count more, but not linearly
        # per stride, the videos long enough for its span (a short shot still serves the small strides)
        self.weights = {}
        for stride in set(blur.strides):
            w = weights * (lengths >= self._span(stride) + 2)
            if w.sum() > 0:
                self.weights[stride] = w / w.sum()
        self.strides = [s for s in blur.strides if s in self.weights]

    @staticmethod
    def _margin(stride: int) -> int:
        """Source frames an exposure reaches beyond an input frame (an exposure is at most the stride)."""
        return int(math.ceil(stride / 2))

    @classmethod
    def _span(cls, stride: int) -> int:
        return 3 * stride + 2 * cls._margin(stride) + 1

    def sample(self, batch: int, crop: int, generator: torch.Generator, sharp: bool = False) -> "Windows":
        stride = self.strides[int(torch.randint(len(self.strides), (1,), generator=generator))]
        margin = self._margin(stride)
        inputs, keys, inters = [], [], []
        for _ in range(batch):
            index = int(torch.multinomial(self.weights[stride], 1, generator=generator))
            v = self.videos[index]
            n, h, w = v.shape[:3]
            size = min(crop, h, w) // 8 * 8
            span = self._span(stride)
            tries = 1  # (no draw at all where motion crops are off: older caches' windows stay as they were)
            if self.blur.motion_crops > 0 and float(torch.rand(1, generator=generator)) < self.blur.motion_crops:
                tries = self.blur.motion_tries
            first, y, x = self.place(index, span, size, margin + stride, generator, tries=tries, stride=stride)
            clip = v[first:first + span, y:y + size, x:x + size].numpy()
            centres = [margin + k * stride for k in range(4)]  # F(i-1), F(i), F(i+1), F(i+2)
            sharp_frames = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).float() / 255
            if sharp:
                blurred = sharp_frames[centres]
            else:
                blurred = self._blur(clip, centres, stride, generator)
            inputs.append(blurred)
            keys.append(sharp_frames[[centres[1], centres[2]]])
            inters.append(sharp_frames[centres[1] + 1:centres[2]])
        size = min(t.shape[-1] for t in keys)
        inputs_t = torch.stack([t[..., :size, :size] for t in inputs])
        key = torch.stack([t[..., :size, :size] for t in keys])
        inter = torch.stack([t[..., :size, :size] for t in inters])
        times = torch.arange(1, stride, dtype=torch.float32) / stride
        return make_windows(inputs_t, key, inter, times, SHARP if sharp else BLURRED, True, self.pool, generator)

    def place(self, index: int, span: int, size: int, key: int, generator: torch.Generator, tries: int = 1,
              stride: int = 1) -> tuple[int, int, int]:
        """Where a window's crop lies in video ``index``: (first frame, top, left), uniformly drawn. ``span``
        frames from the first, ``size`` pixels square; its key frame is the ``key``-th of the span. With
        ``tries`` > 1, the most moving of that many drawn: the largest mean difference between the key frame and
        the frame ``stride`` after it (grey, every 4th pixel)."""
        v = self.videos[index]
        n, h, w = v.shape[:3]
        best, best_score = (0, 0, 0), -1.0
        for _ in range(max(1, tries)):
            first = int(torch.randint(n - span + 1, (1,), generator=generator))
            y = int(torch.randint(h - size + 1, (1,), generator=generator))
            x = int(torch.randint(w - size + 1, (1,), generator=generator))
            if tries <= 1:
                return first, y, x
            a, b = (v[first + k, y:y + size:4, x:x + size:4].float().mean(dim=-1) for k in (key, key + stride))
            score = float((a - b).abs().mean())
            if score > best_score:
                best, best_score = (first, y, x), score
        return best

    def _blur(self, clip: np.ndarray, centres: list[int], stride: int, generator: torch.Generator) -> torch.Tensor:
        cfg = self.blur
        u = torch.rand(5, generator=generator)
        if u[0] < cfg.sharp_prob:
            return torch.from_numpy(np.ascontiguousarray(clip[centres])).permute(0, 3, 1, 2).float() / 255
        temporal = bool(u[1] < cfg.temporal_prob)
        shake = bool(u[2] < cfg.shake_prob) or not temporal
        lo, hi = cfg.exposure
        exposure = (lo + (hi - lo) * float(torch.rand(1, generator=generator))) * stride
        cache: dict = {}
        if temporal and u[3] < cfg.length_prob:
            lo, hi = cfg.length
            want = lo + (hi - lo) * float(torch.rand(1, generator=generator))
            motion = max(motion_length(clip, centres[1]), 1e-3)
            exposure = min(want / motion, cfg.max_exposure, float(stride))  # a camera's exposure: at most the
            #                                                                   frame interval
        frames = []
        for c in centres:
            if temporal:
                f = temporal_blur(clip, c, exposure, flows=cache)
            else:
                f = clip[c].astype(np.float32)
            frames.append(torch.from_numpy(f).permute(2, 0, 1) / 255)
        out = torch.stack(frames)
        if shake:
            lo, hi = cfg.shake_length
            lengths = lo + (hi - lo) * torch.rand(4, generator=generator)
            shared = bool(u[4] < cfg.shared_shake_prob)
            if not shared:
                lengths[torch.rand(4, generator=generator) < cfg.lucky_prob] = 0.0
            k = int(2 * math.ceil(float(lengths.max()) / 2 + 1) + 1)
            straight = torch.rand(1, generator=generator) < cfg.line_prob if cfg.line_prob > 0 else None
            kernels = shake_kernels(lengths, k, generator,
                                    straight=None if straight is None else straight.expand(4))
            if shared:
                kernels = kernels[:1].expand(4, -1, -1)
            out = apply_kernels(out, kernels)
        if cfg.noise > 0:
            sigma = cfg.noise * float(torch.rand(1, generator=generator))
            out = out + sigma * torch.randn(out.shape, generator=generator)
        return out


class SyntheticSampler:
    """``synthetic`` windows: rendered scenes with exact ground truth at ``factor`` x. With ``textures``, a
    ``real_fraction`` of the background and object textures are crops of real frames (else all procedural:
    stripes, noise, gradients, blobs)."""

    def __init__(self, factor: int = 8, textures: TextureBank | None = None, threads: int = 2,
                 real_fraction: float = 0.7) -> None:
        self.factor = factor
        self.textures = textures
        self.real_fraction = real_fraction
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def sample(self, batch: int, crop: int, generator: torch.Generator) -> "Windows":
        cfg = SceneConfig(height=crop, width=crop, factor=self.factor, subframes_per_interval=max(8, self.factor),
                          exposure=(0.0, 1.0), sharp_prob=0.15, real_texture_fraction=self.real_fraction)
        s = render_batch(cfg, batch, generator, "cpu", self.textures)
        key = torch.stack((s.key, s.key), dim=1)  # the sharp F(i+1) is not rendered: these do not reverse in time
        return make_windows(s.inputs, key, s.inter, s.times.cpu(), SYNTHETIC, False, self.pool, generator)


def footage_textures(videos: Sequence[torch.Tensor], every: int = 24) -> TextureBank:
    """Every ``every``-th frame of ``videos`` (uint8 [N,H,W,3]) as a texture bank for synthetic scenes."""
    return TextureBank([v[i].permute(2, 0, 1).contiguous() for v in videos for i in range(0, v.shape[0], every)])


BLURRED, SHARP, SYNTHETIC = 0, 1, 2  # kinds of window: real footage blurred, kept sharp, rendered
KINDS = {"real": BLURRED, "interp": SHARP, "synthetic": SYNTHETIC}
STORED_TIMES = 3  # in-between targets kept per window (drawn at random): all of them at strides up to 4


@dataclass(frozen=True)
class Windows:
    """Training windows as stored: 8-bit frames (channels last) and half-precision flows.

    The DIS prior of each window is computed on its 8-bit inputs, as :mod:`vidrestore.prior` does on
    decoded video, with one flow more than the network takes (F(i+1) -> F(i+2)), so that a window can be
    played backwards."""

    inputs: np.ndarray  # uint8 [N, 4, H, W, 3] F(i-1), F(i), F(i+1), F(i+2) as the network gets them
    key: np.ndarray  # uint8 [N, 2, H, W, 3] sharp F(i) and F(i+1)
    inter: np.ndarray  # uint8 [N, T, H, W, 3] sharp frames at i + times
    times: np.ndarray  # float32 [N, T]; -1 where a window has fewer targets
    flows: np.ndarray  # float16 [N, 4, H, W, 2]: F(i)->F(i+1), F(i+1)->F(i), F(i)->F(i-1), F(i+1)->F(i+2)
    kind: np.ndarray  # uint8 [N]: BLURRED, SHARP or SYNTHETIC
    reversible: np.ndarray  # bool [N]: key[:, 1] is F(i+1)'s sharp frame

    FIELDS = ("inputs", "key", "inter", "times", "flows", "kind", "reversible")

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @staticmethod
    def concat(parts: Sequence["Windows"]) -> "Windows":
        return Windows(*(np.concatenate([getattr(p, f) for p in parts]) for f in Windows.FIELDS))


def _u8(x: torch.Tensor) -> np.ndarray:
    """[..., 3, H, W] in [0, 1] -> uint8 [..., H, W, 3]."""
    lead = x.shape[:-3]
    return quantize(x.reshape(-1, *x.shape[-3:])).reshape(*lead, *x.shape[-2:], 3)


def make_windows(inputs: torch.Tensor, key: torch.Tensor, inter: torch.Tensor, times: torch.Tensor, kind: int,
                 reversible: bool, pool: ThreadPoolExecutor | None, generator: torch.Generator) -> Windows:
    """At most ``STORED_TIMES`` target times; inputs quantized to 8 bits (as decoded video holds them) and
    their prior computed."""
    if times.numel() > STORED_TIMES:
        keep = torch.randperm(times.numel(), generator=generator)[:STORED_TIMES].sort().values
        times, inter = times[keep], inter[:, keep]
    b = inputs.shape[0]
    u8 = _u8(inputs)  # [B, 4, H, W, 3]
    jobs = []
    for w in u8:
        jobs += [(w[1], w[2]), (w[2], w[1]), (w[1], w[0]), (w[2], w[3])]
    flows = list(pool.map(lambda ab: dis_flow(*ab), jobs)) if pool is not None else [dis_flow(a, c) for a, c in jobs]
    flow_arr = np.stack(flows).astype(np.float16).reshape(b, 4, *u8.shape[2:4], 2)
    n_t = times.numel()
    times_arr = np.full((b, STORED_TIMES), -1.0, np.float32)
    times_arr[:, :n_t] = times.numpy()
    inter_arr = np.zeros((b, STORED_TIMES, *u8.shape[2:]), np.uint8)
    inter_arr[:, :n_t] = _u8(inter)
    return Windows(u8, _u8(key), inter_arr, times_arr, flow_arr, np.full(b, kind, np.uint8),
                   np.full(b, reversible, bool))
