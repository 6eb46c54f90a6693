"""Textures for synthetic scenes: random crops of real images/video frames, and procedural patterns.

Everything is batched torch. Random numbers are drawn from the caller's ``torch.Generator`` on that
generator's device, so a seed reproduces the same textures; results are then moved to ``device``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import torch
import torch.nn.functional as F

from vidrestore.errors import InputError
from vidrestore.synth.footage import IMAGE_SUFFIXES, VIDEO_SUFFIXES, decode_video

N_PROCEDURAL_KINDS = 5  # noise, stripes, checkers, gradient, blobs


def _rand(shape: Sequence[int], g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=g, device=g.device).to(device)


def _randn(shape: Sequence[int], g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=g, device=g.device).to(device)


def _randint(low: int, high: int, shape: Sequence[int], g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(low, high, tuple(shape), generator=g, device=g.device).to(device)


def _coords(n: int, h: int, w: int, g: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates relative to the centre, rotated by a random angle per sample: [n,1,h,w] each."""
    ys = torch.arange(h, device=device, dtype=torch.float32) - (h - 1) / 2
    xs = torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    ang = _rand((n, 1, 1, 1), g, device) * (2 * math.pi)
    c, s = torch.cos(ang), torch.sin(ang)
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return u, v


def _two_colours(n: int, g: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    c1 = _rand((n, 3, 1, 1), g, device)
    c2 = _rand((n, 3, 1, 1), g, device)
    # Keep some contrast between the two colours.
    far = (c1 - c2).abs().amax(dim=1, keepdim=True) < 0.25
    c2 = torch.where(far, 1.0 - c1, c2)
    return c1, c2


def _noise_field(n: int, c: int, h: int, w: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Multi-octave value noise in [0,1]: [n,c,h,w]."""
    out = torch.zeros((n, c, h, w), device=device)
    total = torch.zeros((n, 1, 1, 1), device=device)
    persistence = 0.45 + 0.4 * _rand((n, 1, 1, 1), g, device)
    amp = torch.ones((n, 1, 1, 1), device=device)
    cell = max(h, w) / 3.0
    while cell >= 1.5:
        gh, gw = max(2, int(math.ceil(h / cell)) + 1), max(2, int(math.ceil(w / cell)) + 1)
        coarse = _rand((n, c, gh, gw), g, device)
        out = out + amp * F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
        total = total + amp
        amp = amp * persistence
        cell /= 2.0
    out = out / total
    lo = out.amin(dim=(1, 2, 3), keepdim=True)
    hi = out.amax(dim=(1, 2, 3), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-6)


def _kind_noise(n: int, h: int, w: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    field = _noise_field(n, 3, h, w, g, device)
    c1, c2 = _two_colours(n, g, device)
    mono = field[:, :1]
    duo = c1 + (c2 - c1) * mono
    colourful = _rand((n, 1, 1, 1), g, device) < 0.5
    return torch.where(colourful, field, duo)


def _kind_stripes(n: int, h: int, w: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    u, _ = _coords(n, h, w, g, device)
    period = 4.0 + 36.0 * _rand((n, 1, 1, 1), g, device) ** 2
    phase = _rand((n, 1, 1, 1), g, device) * (2 * math.pi)
    sharp = 0.5 + 8.0 * _rand((n, 1, 1, 1), g, device)
    s = torch.tanh(sharp * torch.sin(2 * math.pi * u / period + phase)) / torch.tanh(sharp)
    c1, c2 = _two_colours(n, g, device)
    return c1 + (c2 - c1) * (0.5 + 0.5 * s)


def _kind_checkers(n: int, h: int, w: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    u, v = _coords(n, h, w, g, device)
    pu = 4.0 + 28.0 * _rand((n, 1, 1, 1), g, device)
    pv = pu * (0.6 + 0.8 * _rand((n, 1, 1, 1), g, device))
    sharp = 1.0 + 10.0 * _rand((n, 1, 1, 1), g, device)
    s = torch.sin(math.pi * u / pu) * torch.sin(math.pi * v / pv)
    s = torch.tanh(sharp * s) / torch.tanh(sharp)
    c1, c2 = _two_colours(n, g, device)
    return c1 + (c2 - c1) * (0.5 + 0.5 * s.clamp(-1, 1))


def _kind_gradient(n: int, h: int, w: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    u, v = _coords(n, h, w, g, device)
    span = max(h, w) * (0.5 + _rand((n, 1, 1, 1), g, device))
    ramp = (u / span + 0.5).clamp(0, 1)
    radial = (torch.sqrt(u * u + v * v) / span).clamp(0, 1)
    use_radial = _rand((n, 1, 1, 1), g, device) < 0.3
    t = torch.where(use_radial, radial, ramp)
    c1, c2 = _two_colours(n, g, device)
    return c1 + (c2 - c1) * t


def _kind_blobs(n: int, h: int, w: int, g: torch.Generator, device: torch.device, count: int = 10) -> torch.Tensor:
    ys = torch.arange(h, device=device, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, 1, w)
    out = _rand((n, 3, 1, 1), g, device).expand(n, 3, h, w).clone()
    for _ in range(count):
        cy = _rand((n, 1, 1, 1), g, device) * h
        cx = _rand((n, 1, 1, 1), g, device) * w
        r = 2.0 + (0.25 * min(h, w)) * _rand((n, 1, 1, 1), g, device) ** 1.5
        hardness = 1.0 + 6.0 * _rand((n, 1, 1, 1), g, device)
        d2 = ((ys - cy) ** 2 + (xs - cx) ** 2) / (r * r)
        a = torch.sigmoid(hardness * (1.0 - d2) * 2.0)
        col = _rand((n, 3, 1, 1), g, device)
        out = out * (1 - a) + col * a
    return out


_KINDS = (_kind_noise, _kind_stripes, _kind_checkers, _kind_gradient, _kind_blobs)


def procedural(n: int, h: int, w: int, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """``n`` random procedural textures [n,3,h,w] in [0,1] (noise, stripes, checkers, gradients, blobs)."""
    device = torch.device(device)
    out = torch.empty((n, 3, h, w), device=device)
    if n == 0:
        return out
    kinds = _randint(0, N_PROCEDURAL_KINDS, (n,), generator, torch.device("cpu")).tolist()
    for k, fn in enumerate(_KINDS):
        idx = [i for i, kk in enumerate(kinds) if kk == k]
        if idx:
            out[idx] = fn(len(idx), h, w, generator, device)
    # Fine detail on top so that every texture has some high-frequency content to align.
    detail_amp = 0.08 * _rand((n, 1, 1, 1), generator, device) ** 2
    detail = _rand((n, 1, h, w), generator, device) - 0.5
    return (out + detail_amp * detail).clamp(0, 1)


def _load_image(path: Path) -> torch.Tensor:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def _load_video_frames(path: Path, count: int, max_side: int, skip_frames: int = 0) -> list[torch.Tensor]:
    """About ``count`` frames spread over the video after its first ``skip_frames``, downscaled so the
    longer side is <= max_side."""
    frames = decode_video(path, max_side=max_side, max_frames=None, keep_every=None, sample_count=count,
                          skip_frames=skip_frames)
    return [f.permute(2, 0, 1).contiguous() for f in frames]


def _downscale(img: torch.Tensor, max_side: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    s = max_side / max(h, w)
    if s >= 1.0:
        return img
    size = (max(1, round(h * s)), max(1, round(w * s)))
    x = F.interpolate(img[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return x[0].round().clamp(0, 255).to(torch.uint8)


class TextureBank:
    """Real images held in memory as uint8 [3,H,W] tensors; hands out random float crops."""

    def __init__(self, images: Sequence[torch.Tensor], device: torch.device | str = "cpu"):
        if not images:
            raise InputError("texture bank: no images")
        self.device = torch.device(device)
        self.images = [img.to(self.device) for img in images]

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | Path],
        device: torch.device | str = "cpu",
        *,
        max_side: int = 640,
        frames_per_video: int = 24,
        skip_frames: int = 0,
    ) -> "TextureBank":
        """Load every image and some frames of every video found in ``paths`` (files or folders);
        the first ``skip_frames`` frames of every video are left out (held out for evaluation)."""
        files: list[Path] = []
        for p in paths:
            p = Path(p)
            if p.is_dir():
                files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES))
            elif p.is_file():
                files.append(p)
            else:
                raise InputError(f"textures: {p} does not exist")
        images: list[torch.Tensor] = []
        for f in files:
            if f.suffix.lower() in IMAGE_SUFFIXES:
                images.append(_downscale(_load_image(f), max_side))
            else:
                images.extend(_load_video_frames(f, frames_per_video, max_side, skip_frames))
        if not images:
            raise InputError(f"textures: no images or videos found in {', '.join(str(p) for p in paths)}")
        return cls(images, device)

    def sample(
        self, n: int, h: int, w: int, generator: torch.Generator, device: torch.device | str
    ) -> torch.Tensor:
        """``n`` random crops [n,3,h,w] in [0,1], randomly rescaled, flipped and colour-permuted."""
        device = torch.device(device)
        cpu = torch.device("cpu")
        idx = _randint(0, len(self.images), (n,), generator, cpu).tolist()
        r = _rand((n, 6), generator, cpu).tolist()
        perms = _randint(0, 6, (n,), generator, cpu).tolist()
        out = []
        for i in range(n):
            img = self.images[idx[i]]
            ih, iw = img.shape[-2:]
            scale = 0.6 + 0.9 * r[i][0]  # crop size relative to the output size
            ch, cw = max(2, round(h * scale)), max(2, round(w * scale))
            if ch > ih or cw > iw:  # the image is small: take the largest crop with the output's aspect
                f = min(ih / ch, iw / cw)
                ch, cw = max(2, int(ch * f)), max(2, int(cw * f))
            y0 = int(r[i][1] * (ih - ch + 1))
            x0 = int(r[i][2] * (iw - cw + 1))
            crop = img[:, y0 : y0 + ch, x0 : x0 + cw].float()[None] / 255.0
            if (ch, cw) != (h, w):
                crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=ch > h)
            crop = crop[0]
            if r[i][3] < 0.5:
                crop = crop.flip(-1)
            if r[i][4] < 0.3:
                crop = crop.flip(-2)
            if r[i][5] < 0.3:
                order = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)][perms[i]]
                crop = crop[list(order)]
            out.append(crop)
        return torch.stack(out).to(device).clamp(0, 1)


def random_textures(
    n: int,
    h: int,
    w: int,
    generator: torch.Generator,
    device: torch.device | str,
    bank: TextureBank | None = None,
    real_fraction: float = 0.7,
) -> torch.Tensor:
    """Mix of real crops (from ``bank``, if any) and procedural textures: [n,3,h,w]."""
    device = torch.device(device)
    if bank is None or n == 0:
        return procedural(n, h, w, generator, device)
    use_real = (_rand((n,), generator, torch.device("cpu")) < real_fraction).tolist()
    real_idx = [i for i, u in enumerate(use_real) if u]
    proc_idx = [i for i, u in enumerate(use_real) if not u]
    out = torch.empty((n, 3, h, w), device=device)
    if real_idx:
        out[real_idx] = bank.sample(len(real_idx), h, w, generator, device)
    if proc_idx:
        out[proc_idx] = procedural(len(proc_idx), h, w, generator, device)
    return out
