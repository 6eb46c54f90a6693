"""Training samples from real footage, decoded once into memory (uint8, reduced size).

* ``VideoSampler``: the user's high-frame-rate footage, made into joint deblur + interpolation samples
  the way Adobe240 / GoPro are: input k of the window is the mean of ``m`` consecutive frames centred
  on frame ``c + k*n`` (n = factor, k = -1, 0, 1, 2); targets are the sharp centre frame ``c`` (key)
  and the in-between frames ``c + j`` at times j/n.
* ``ClipSampler``: sharp ordinary-rate footage as interpolation samples: inputs frames
  i-s, i, i+s, i+2s (stride s, 2 by default); key target = frame i itself; targets frames i+j at j/s.

Both pick random windows, random crops, random flips and random time reversal. The footage is decoded by
``vidrestore.synth.footage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from vidrestore.errors import InputError, UsageError
from vidrestore.synth.footage import decode_video, list_videos
from vidrestore.synth.scenes import Sample


@dataclass(frozen=True)
class Window:
    """Frame indices of one training window in a frame sequence."""

    inputs: tuple[tuple[int, ...], ...]  # 4 inputs, each the frames averaged into it
    key: int
    inter: tuple[int, ...]
    times: tuple[float, ...]

    @property
    def first(self) -> int:
        return min(min(f) for f in self.inputs)

    @property
    def last(self) -> int:
        return max(max(f) for f in self.inputs)

    def mirrored(self, n_frames: int) -> "Window":
        """The same window in the time-reversed sequence (frame f -> n_frames-1-f)."""
        r = n_frames - 1
        return Window(
            inputs=tuple(tuple(r - f for f in grp) for grp in self.inputs),
            key=r - self.key,
            inter=tuple(r - f for f in self.inter),
            times=self.times,
        )


def adobe_window(center: int, factor: int, blur: int) -> Window:
    """Adobe240/GoPro-style window around sharp frame ``center``: input k (k=-1..2) is the mean of
    ``blur`` consecutive frames centred on ``center + k*factor`` (odd ``blur`` is centred exactly; even
    leans one frame later); intermediate targets are frames center+1 .. center+factor-1."""
    if factor < 1 or blur < 1:
        raise UsageError("adobe_window: factor and blur must be >= 1")
    lo, hi = (blur - 1) // 2, blur // 2
    inputs = tuple(tuple(range(center + k * factor - lo, center + k * factor + hi + 1)) for k in (-1, 0, 1, 2))
    inter = tuple(center + j for j in range(1, factor))
    times = tuple(j / factor for j in range(1, factor))
    return Window(inputs, center, inter, times)


def interp_window(center: int, stride: int) -> Window:
    """Sharp interpolation window: inputs frames center + k*stride (k=-1..2); targets the frames between."""
    if stride < 2:
        raise UsageError("interp_window: stride must be >= 2")
    inputs = tuple((center + k * stride,) for k in (-1, 0, 1, 2))
    inter = tuple(center + j for j in range(1, stride))
    times = tuple(j / stride for j in range(1, stride))
    return Window(inputs, center, inter, times)


class _FrameSampler:
    """Shared machinery: in-memory videos [N,H,W,3] uint8 and batched crops of windows."""

    def __init__(self, videos: Sequence[torch.Tensor]):
        self.videos = [v for v in videos if v.shape[0] > 0]
        if not self.videos:
            raise InputError("no frames to sample from")

    @property
    def frame_count(self) -> int:
        return sum(int(v.shape[0]) for v in self.videos)

    def _pick(self, span: int, generator: torch.Generator) -> tuple[int, int] | None:
        """A random (video, centre offset) such that a window spanning ``span`` frames fits."""
        ok = [i for i, v in enumerate(self.videos) if v.shape[0] >= span]
        if not ok:
            return None
        weights = torch.tensor([float(self.videos[i].shape[0] - span + 1) for i in ok])
        vi = ok[int(torch.multinomial(weights, 1, generator=generator))]
        start = int(torch.randint(0, self.videos[vi].shape[0] - span + 1, (1,), generator=generator))
        return vi, start

    def _batch(
        self,
        windows: Sequence[tuple[int, Window]],
        crop: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> Sample:
        inputs, keys, inters = [], [], []
        for vi, win in windows:
            video = self.videos[vi]
            h, w = video.shape[1:3]
            if h < crop or w < crop:
                raise InputError(f"training footage {w}x{h} is smaller than the crop {crop}")
            y0 = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
            x0 = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
            flip = torch.rand(2, generator=generator).tolist()
            needed = sorted({f for grp in win.inputs for f in grp} | {win.key} | set(win.inter))
            clip = video[needed, y0 : y0 + crop, x0 : x0 + crop].to(device)
            clip = clip.permute(0, 3, 1, 2).float() / 255.0  # [F,3,c,c]
            if flip[0] < 0.5:
                clip = clip.flip(-1)
            if flip[1] < 0.2:
                clip = clip.flip(-2)
            pos = {f: i for i, f in enumerate(needed)}
            inputs.append(torch.stack([clip[[pos[f] for f in grp]].mean(dim=0) for grp in win.inputs]))
            keys.append(clip[pos[win.key]])
            inters.append(clip[[pos[f] for f in win.inter]])
        times = torch.tensor(windows[0][1].times, dtype=torch.float32, device=device)
        return Sample(
            inputs=torch.stack(inputs), key=torch.stack(keys), inter=torch.stack(inters), times=times
        )

    def _windows(self, batch: int, make, generator: torch.Generator) -> list[tuple[int, Window]]:
        probe = make(0)
        span = probe.last - probe.first + 1
        out = []
        for _ in range(batch):
            picked = self._pick(span, generator)
            if picked is None:
                raise InputError(f"training footage is too short: windows need {span} frames")
            vi, start = picked
            win = make(start - probe.first)
            if bool(torch.rand(1, generator=generator) < 0.5):
                win = win.mirrored(int(self.videos[vi].shape[0]))
            out.append((vi, win))
        return out


class VideoSampler(_FrameSampler):
    """Joint deblur + interpolation samples from high-frame-rate footage (Adobe240/GoPro recipe)."""

    def __init__(self, videos: Sequence[torch.Tensor], factor: int = 8, blur: Sequence[int] | None = None):
        super().__init__(videos)
        if factor < 2:
            raise UsageError("video sampler: factor must be >= 2")
        self.factor = factor
        self.blur = tuple(blur) if blur else tuple(range(1, factor + 1, 2))

    @classmethod
    def from_dir(
        cls, folder: str | Path, factor: int = 8, *, scale: float = 0.5, max_frames: int = 960,
        blur: Sequence[int] | None = None, skip_frames: int = 0,
    ) -> "VideoSampler":
        videos = [decode_video(p, scale=scale, max_frames=max_frames, skip_frames=skip_frames)
                  for p in list_videos(folder)]
        return cls(videos, factor, blur)

    def sample(self, batch: int, crop: int, generator: torch.Generator, device: torch.device | str) -> Sample:
        m = self.blur[int(torch.randint(0, len(self.blur), (1,), generator=generator))]
        wins = self._windows(batch, lambda c: adobe_window(c, self.factor, m), generator)
        return self._batch(wins, crop, generator, torch.device(device))


class ClipSampler(_FrameSampler):
    """Interpolation samples from sharp ordinary-rate footage: every ``stride``-th frame as input."""

    def __init__(self, videos: Sequence[torch.Tensor], strides: Sequence[int] = (2,)):
        super().__init__(videos)
        if not strides or min(strides) < 2:
            raise UsageError("clip sampler: strides must be >= 2")
        self.strides = tuple(strides)

    @classmethod
    def from_dir(
        cls, folder: str | Path, strides: Sequence[int] = (2,), *, scale: float = 0.25, max_frames: int = 600,
        skip_frames: int = 0,
    ) -> "ClipSampler":
        videos = [decode_video(p, scale=scale, max_frames=max_frames, skip_frames=skip_frames)
                  for p in list_videos(folder)]
        return cls(videos, strides)

    def sample(self, batch: int, crop: int, generator: torch.Generator, device: torch.device | str) -> Sample:
        s = self.strides[int(torch.randint(0, len(self.strides), (1,), generator=generator))]
        wins = self._windows(batch, lambda c: interp_window(c, s), generator)
        return self._batch(wins, crop, generator, torch.device(device))
