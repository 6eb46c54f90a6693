"""The flow-prior network: motion from a classical optical-flow prior, refined; a full-resolution
deblurring path.

A window of four frames F(i-1), F(i), F(i+1), F(i+2) goes in, with the dense classical flows of its
pair (F(i) <-> F(i+1), both ways) and F(i) -> F(i-1), computed outside the network (OpenCV DIS on the
host: :mod:`vidrestore.prior`). Out come the sharp frame at F(i)'s time and one frame per t in (0, 1).
F(i+2) is not used: its flows and features belong to the next window.

Data flow::

    every frame ──encoder──> (f2 @1/4, x @1/8)                        once per frame, cacheable
    pair (i, i+1), once per window, both ways:
        inter-frame attention at 1/8 over a window centred on the prior: the other frame's features
        are warped by the prior, compared with this frame's in a (2r+1)^2 window; the softmax over the
        window gives an expected offset and an attended appearance
        motion = prior + correction(offset, attention, features)            (correction zero at start)
    per t (the light part), both sides through the same weights:
        flows to t: t * M10 from F(i), (1 - t) * M01 from F(i+1)
        a head at 1/4 scale sees both sides' features warped to t and corrects each flow and its
        visibility logit                                                    (zero at start)
        blend = w * warp(F(i)) + (1 - w) * warp(F(i+1)), w = sigmoid(l0 - l1 + log((1 - t) / t))
    restoration, full resolution (NAFNet-style encoder-decoder, residual, zero at start):
        key frame:        F(i) with F(i-1) and F(i+1) aligned to it by their flows
        in-between, joint: the blend with the two frames warped to t
        in-between, sharp input (interp mode): a light refiner instead

With every correction zeroed (as built) the in-between frame is exactly the prior's warp-and-blend and
the key frame is F(i): the floor the training has to beat. A frame with replicated neighbours (the ends of a
video, scene cuts) has zero prior flows and aligned neighbours equal to itself: the network is then a single-frame
deblurrer.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrestore.model.attention import LocalSelfAttention, ViewAttention, window_products
from vidrestore.model.layers import ResBlock, act, check_multiple, conv, window_features, zero_init
from vidrestore.model.warp import backward_warp, resize_flow, resize_map

ARCH = "prior"

Features = tuple[torch.Tensor, ...]  # (1/4 scale, 1/8 scale)
QUARTER, EIGHTH = 0, 1  # their places in Features


class PriorFlows(NamedTuple):
    """A window's classical flows, [B, 2, H, W] each, in full-resolution pixels (x then y), backward:
    ``a(p) ~ b(p + flow_ab(p))``."""

    f01: torch.Tensor  # F(i) -> F(i+1)
    f10: torch.Tensor  # F(i+1) -> F(i)
    f0p: torch.Tensor  # F(i) -> F(i-1)

    @classmethod
    def zero(cls, height: int, width: int, device: torch.device | str = "cpu") -> "PriorFlows":
        """No motion, for one [1, 2, height, width] item (probes of memory and cost)."""
        z = torch.zeros((1, 2, height, width), device=device)
        return cls(z, z, z)


@dataclass(frozen=True)
class PriorConfig:
    """Which tensors a flow-prior network has. Stored as JSON (with ``arch``) in its weights files."""

    name: str
    channels: tuple[int, int, int] = (16, 24, 32)  # encoder widths at 1/2, 1/4, 1/8
    window: int = 5  # inter-frame attention window around the prior (odd), in 1/8-scale pixels
    head: int = 24  # width of the pair correction (1/8) and the per-t flow head (1/4, the costliest part at 2x)
    widths: tuple[int, ...] = (24, 32, 48, 64)  # restoration encoder-decoder on 2x2 blocks: 1/2, 1/4, 1/8, 1/16
    blocks: tuple[int, ...] = (1, 1, 1, 2)  # its blocks per level (the last: the bottleneck)
    refine: int = 16  # light refiner width (in-between frames of sharp input)
    # the restoration path's attention at its coarse levels (1/8 and 1/16); off in files that predate them
    view_attention: bool = False  # across the views (key frame and aligned neighbours; the two sides at t)
    local_attention: int = 0  # radius of self-attention within the latent (0: none)
    # the restoration path also sees the motion to the two views beside its frame (a blur's direction and
    # length are the motion's over the exposure); off in files that predate it
    restore_motion: bool = False
    # the scales of the per-t parts (interp mode's cost): the flow head at 1/4 or 1/8, the refiner at 1/2 or 1/4
    head_scale: int = 4
    refine_scale: int = 2

    def __post_init__(self) -> None:
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels must be three widths >= 1, got {self.channels}")
        if self.window < 1 or self.window % 2 != 1:
            raise ValueError(f"window must be odd, got {self.window}")
        if len(self.widths) < 2 or len(self.widths) != len(self.blocks) or min(self.widths) < 1 or min(self.blocks) < 0:
            raise ValueError(f"widths and blocks must have the same length (2 or more), got {self.widths}, "
                             f"{self.blocks}")
        if self.head < 1 or self.refine < 1:
            raise ValueError("head and refine must be >= 1")
        if self.local_attention < 0:
            raise ValueError(f"local_attention must be >= 0, got {self.local_attention}")
        if self.head_scale not in (4, 8) or self.refine_scale not in (2, 4):
            raise ValueError(f"head_scale must be 4 or 8 and refine_scale 2 or 4, got {self.head_scale}, "
                             f"{self.refine_scale}")

    @property
    def multiple(self) -> int:
        """Height and width given to the model must be multiples of this."""
        return max(8, 2 ** len(self.widths))


PRIOR_CONFIGS: dict[str, PriorConfig] = {
    "default": PriorConfig("default", (24, 48, 64), window=7, head=64, widths=(32, 64, 96, 128), blocks=(1, 2, 2, 4),
                           refine=24),
    "small": PriorConfig("small", view_attention=True, local_attention=3),
    "tiny": PriorConfig("tiny", (8, 8, 12), window=3, head=8, widths=(8, 8, 12, 16), blocks=(1, 0, 1, 1), refine=8,
                        restore_motion=True),  # (tests: every path runs with the motion input)
}


def prior_config_to_json(cfg: PriorConfig) -> str:
    return json.dumps({"arch": ARCH, **dataclasses.asdict(cfg)}, sort_keys=True)


def prior_config_from_dict(data: dict) -> PriorConfig:
    data = dict(data)
    if data.pop("arch", ARCH) != ARCH:
        raise ValueError("not a flow-prior network config")
    names = {f.name for f in dataclasses.fields(PriorConfig)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown model config fields: {sorted(unknown)}")
    for f in dataclasses.fields(PriorConfig):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in ("channels", "widths", "blocks"):
            if not isinstance(value, list) or not all(type(v) is int for v in value):
                raise ValueError(f"{f.name} must be a list of whole numbers")
            data[f.name] = tuple(value)
        elif f.name == "name":
            if not isinstance(value, str) or len(value) > 64:
                raise ValueError("name must be a text of at most 64 characters")
        elif f.name in ("view_attention", "restore_motion"):
            if type(value) is not bool:
                raise ValueError(f"{f.name} must be true or false")
        elif type(value) is not int:
            raise ValueError(f"{f.name} must be a whole number")
    return PriorConfig(**data)


class Encoder(nn.Module):
    """Per-frame features at 1/4 and 1/8 scale (matching and the flow heads). Nothing reads the 1/2-scale
    level but the next one, so that level is one strided convolution (a residual block there cost 20% of the
    network's time at 2x interpolation) and is not returned (callers cache features per frame: at 1280x720
    it was 15 MB a frame)."""

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.s1 = nn.Sequential(conv(3, c1, stride=2), act())
        self.s2 = nn.Sequential(conv(c1, c2, stride=2), act(), ResBlock(c2))
        self.s3 = nn.Sequential(conv(c2, c3, stride=2), act(), ResBlock(c3))

    def forward(self, x: torch.Tensor) -> Features:
        f2 = self.s2(self.s1(x - 0.5))
        return f2, self.s3(f2)


# -- restoration path: NAFNet-style blocks ------------------------------------------------------------


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        d = x32 - x32.mean(dim=1, keepdim=True)
        scale = torch.rsqrt(d.square().mean(dim=1, keepdim=True) + 1e-6)
        w, b = self.weight.view(1, -1, 1, 1), self.bias.view(1, -1, 1, 1)
        if torch.is_grad_enabled():
            return (d * scale).to(x.dtype) * w + b
        # inference: in place on the fresh tensor (at 1280x720 a full-size tensor of the path's first level is
        # 23 MB, and the norm runs before each of its convolutions): fewer temporaries, and faster
        return d.mul_(scale).to(x.dtype).mul_(w).add_(b)


def _residual(x: torch.Tensor, scale: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """x + scale * branch; in inference in place on ``branch`` (a fresh tensor)."""
    return x + scale * branch if torch.is_grad_enabled() else branch.mul_(scale).add_(x)


def _gate(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The simple gate a * b (two halves of a fresh tensor); in inference in place on the first half."""
    return a * b if torch.is_grad_enabled() else a.mul_(b)


class GatedBlock(nn.Module):
    """A NAFNet-style block: norm, 1x1 to 2c, depthwise 3x3, simple gate (the product of the two halves),
    1x1 back; then norm, 1x1 to 2c, gate, 1x1. Both branches are scaled by learned factors that start at
    zero, so a new block is the identity. No global pooling (NAFNet's channel attention): the output of a
    pixel depends on its neighbourhood only, so tiles give the same result as the whole frame."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.depthwise = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.project = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.ffn_in = nn.Conv2d(c, 2 * c, 1)
        self.ffn_out = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.depthwise(self.expand(self.norm1(x))).chunk(2, dim=1)
        x = _residual(x, self.beta, self.project(_gate(a, b)))
        a, b = self.ffn_in(self.norm2(x)).chunk(2, dim=1)
        return _residual(x, self.gamma, self.ffn_out(_gate(a, b)))


MOTION_SCALE = 32.0  # px: the restoration path's motion input is tanh(flow / MOTION_SCALE)


class Restorer(nn.Module):
    """The full-resolution restoration path: an encoder-decoder over a centre image and two aligned
    views of it (9 channels), adding a full-resolution residual to the centre (zero at start). Its first
    level works on 2x2 pixel blocks (space to depth, nothing lost): a quarter of the cost, twice the
    receptive field. With ``restore_motion`` it also takes the flows from the centre to the two views
    (4 channels, squashed): where a blur runs and how far, which the image alone shows only faintly."""

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.intro = nn.Sequential(nn.PixelUnshuffle(2), conv(9 * 4, w[0]))
        # the motion joins the first level through a 1x1 convolution of its 2x2 blocks (about 1% of the path's
        # multiply-accumulates), zero at start: a file without it restores exactly as before
        self.motion = zero_init(nn.Conv2d(4 * 4, w[0], 1)) if cfg.restore_motion else None
        self.down = nn.ModuleList(nn.Conv2d(w[i], w[i + 1], 2, stride=2) for i in range(len(w) - 1))
        self.enc = nn.ModuleList(nn.Sequential(*[GatedBlock(w[i]) for _ in range(cfg.blocks[i])])
                                 for i in range(len(w) - 1))
        self.middle = nn.Sequential(*[GatedBlock(w[-1]) for _ in range(cfg.blocks[-1])])
        self.up = nn.ModuleList(nn.Sequential(nn.Conv2d(w[i + 1], 4 * w[i], 1), nn.PixelShuffle(2))
                                for i in range(len(w) - 1))
        self.dec = nn.ModuleList(nn.Sequential(*[GatedBlock(w[i]) for _ in range(max(1, cfg.blocks[i]))])
                                 for i in range(len(w) - 1))
        self.out = nn.Sequential(zero_init(conv(w[0], 3 * 4)), nn.PixelShuffle(2))
        # attention after the blocks of the coarse levels (level i is at 1/2^(i+1)): across views at 1/8 and
        # coarser, within the latent at the coarsest level only (where a 7x7 window already reaches 112 px; at
        # 1/8 it cost a fifth of a training step on the CPU)
        coarse = [i for i in range(len(w)) if 2 ** (i + 1) >= 8]
        self.views = nn.ModuleDict({str(i): ViewAttention(w[i], cfg.channels[2]) for i in coarse}
                                   if cfg.view_attention else {})
        last = len(w) - 1
        self.local = nn.ModuleDict({str(last): LocalSelfAttention(w[last], cfg.local_attention)}
                                   if cfg.local_attention else {})

    def _attend(self, level: int, h: torch.Tensor, views: torch.Tensor | None) -> torch.Tensor:
        name = str(level)
        if name in self.views:
            if views is None:
                raise ValueError("this restoration path attends across views: pass the views' latents")
            h = self.views[name](h, views)
        if name in self.local:
            h = self.local[name](h)
        return h

    def forward(self, centre: torch.Tensor, aux_a: torch.Tensor, aux_b: torch.Tensor,
                views: torch.Tensor | None = None, motion: torch.Tensor | None = None) -> torch.Tensor:
        """``views`` [B, V, C, H/8, W/8]: the latents the view attention picks from (when it has one).
        ``motion`` [B, 4, H, W]: the flows from the centre to ``aux_a`` and to ``aux_b`` in pixels (when it
        takes them)."""
        # each view to 2x2 blocks, then joined: the channels of space-to-depth on the joined views, in the same
        # order, without the full-size joined copy
        unshuffle, first = self.intro
        h = first(torch.cat([unshuffle(t) for t in (centre, aux_a, aux_b)], dim=1) - 0.5)
        if self.motion is not None:
            if motion is None:
                raise ValueError("this restoration path takes the motion to its views: pass their flows")
            h = h + self.motion(unshuffle(torch.tanh(motion.to(h.dtype) * (1.0 / MOTION_SCALE))))
        skips = []
        for i, (enc, down) in enumerate(zip(self.enc, self.down)):
            h = self._attend(i, enc(h), views)
            skips.append(h)
            h = down(h)
        h = self._attend(len(self.down), self.middle(h), views)
        for i in reversed(range(len(self.up))):
            h = self.dec[i](self.up[i](h) + skips[i])
        return centre + self.out(h)


# -- motion ------------------------------------------------------------------------------------------


class PairCorrection(nn.Module):
    """Inter-frame attention at 1/8 scale around the prior, and the correction of the pair's motion.

    The other frame's features are warped by the prior, so the (2r+1)^2 attention window of each pixel is
    centred where the prior says it moved. Scaled dot products over the window, softmax: the expected
    offset (the attention's motion) and the attended appearance. A small head turns them, with the frame's
    own features and the prior, into a correction of the prior in full-resolution pixels (its last layer
    starts at zero)."""

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        c3, ch, k = cfg.channels[2], cfg.head, cfg.window
        self.radius = k // 2
        self.query = nn.Conv2d(c3, c3, 1)
        self.key = nn.Conv2d(c3, c3, 1)
        r = self.radius
        # made on the CPU even where the module is built on the meta device (the weights' shape check): stacking
        # meta tensors would import torch's Python reference kernels, a second and a half of start-up
        span = torch.arange(-r, r + 1, dtype=torch.float32, device="cpu")
        ys, xs = torch.meshgrid(span, span, indexing="ij")
        self.register_buffer("offsets", torch.stack((xs.flatten(), ys.flatten())), persistent=False)
        self.body = nn.Sequential(conv(2 * c3 + k * k + 2 + 2, ch), act(), conv(ch, ch), act())
        self.delta = zero_init(conv(ch, 2))

    def forward(self, x_own: torch.Tensor, x_other: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """x_own, x_other [B,C,h,w] at 1/8; prior [B,2,H,W] full resolution -> motion [B,2,H,W]."""
        size = x_own.shape[-2:]
        p8 = resize_flow(prior, tuple(size))
        aligned = backward_warp(x_other, p8)
        q, k = self.query(x_own), self.key(aligned)
        logits = window_products(q, k, self.radius) / math.sqrt(q.shape[1])
        attn = torch.softmax(logits.float(), dim=1).to(q.dtype)
        offset = torch.einsum("bkhw,ck->bchw", attn, self.offsets.to(attn.dtype))
        appearance = backward_warp(aligned, offset)  # the attended view, one sample at the expected offset
        dt = x_own.dtype  # the flows stay float32 (pixel positions at 4K); the layers run in the features' dtype
        h = self.body(torch.cat((x_own, appearance.to(dt), attn.to(dt), offset.to(dt), (p8 / 8.0).to(dt)), dim=1))
        d = self.delta(h)  # in full-resolution pixels: a unit of the head is one pixel of motion, not eight
        return prior + resize_map(d, tuple(prior.shape[-2:]))


class FlowHead(nn.Module):
    """Per t and side, at 1/``head_scale`` scale (1/4 or 1/8): a correction of that side's flow to t (in
    full-resolution pixels) and its visibility logit, from both sides' features of that scale warped to t,
    their difference, the flow and t. Shared by both sides."""

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        c2, ch = cfg.channels[1 if cfg.head_scale == 4 else 2], cfg.head
        self.scale = float(cfg.head_scale)
        self.body = nn.Sequential(conv(3 * c2 + 2 + 2, ch), act(), conv(ch, ch), act(), conv(ch, ch), act())
        self.delta = zero_init(conv(ch, 3))

    def forward(self, own: torch.Tensor, other: torch.Tensor, flow4: torch.Tensor, tau: torch.Tensor,
                sharp: bool = False):
        """``sharp``: the inputs are known to be sharp (interp mode), where the classical flow is at its best
        and a correction learnt on blurry input would only blur it: the head is told, as one more channel."""
        dt = own.dtype
        flag = torch.full_like(tau, 1.0 if sharp else 0.0).to(dt)
        d = self.delta(self.body(torch.cat((own, other, (own - other).abs(), (flow4 / self.scale).to(dt), tau.to(dt),
                                            flag), dim=1)))
        return d[:, :2], d[:, 2:3]


class Refiner(nn.Module):
    """The light path for in-between frames of sharp input: a residual at 1/``refine_scale`` scale from the
    blend and the two warped frames (zero at start)."""

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        c, self.scale = cfg.refine, cfg.refine_scale
        self.body = nn.Sequential(conv(9 + 1, c), act(), conv(c, c), act(), conv(c, c), act())
        self.out = nn.Sequential(zero_init(conv(c, 3 * self.scale ** 2)), nn.PixelShuffle(self.scale))

    def forward(self, blend: torch.Tensor, w0: torch.Tensor, warped0: torch.Tensor,
                warped1: torch.Tensor) -> torch.Tensor:
        # each part pooled, then joined at half size: the same numbers as pooling the joined full-size tensor,
        # without writing and reading that tensor
        x = torch.cat([F.avg_pool2d(t, self.scale) for t in (blend, warped0, warped1, w0)], dim=1)
        return blend + self.out(self.body(x))


class PriorNet(nn.Module):
    """The flow-prior network: ``config`` says which tensors exist. It has no parameter-free inference
    stages, so no options. Its callers compute the prior (:mod:`vidrestore.prior`) and pass it to
    ``restore``."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.pair = PairCorrection(config)
        self.flow_head = FlowHead(config)
        self.restorer = Restorer(config)
        self.refiner = Refiner(config)

    def encode(self, frame: torch.Tensor) -> Features:
        """frame [B, 3, H, W] in [0, 1], H and W multiples of ``config.multiple``."""
        check_multiple(frame, self.config.multiple)
        return self.encoder(frame)

    def restore(self, frames: Sequence[torch.Tensor], feats: Sequence[Features], times: torch.Tensor,
                prior: PriorFlows, with_key: bool = True, sharp: bool = False,
                time_chunk: int = 0) -> tuple[torch.Tensor | None, torch.Tensor]:
        """One window F(i-1), F(i), F(i+1), F(i+2) with its features and prior flows -> (key [B,3,H,W] or
        None, inter [B,T,3,H,W]). ``sharp``: the inputs are known to be sharp (interp mode): the in-between
        frames take the light refiner, not the restoration path. ``time_chunk``: make at most this many
        in-between frames at once (the same frames, a fraction of the working memory; 0: all at once)."""
        key, parts = self.restore_parts(frames, feats, times, prior, with_key, sharp, time_chunk)
        return key, join_parts(parts)

    def restore_parts(self, frames: Sequence[torch.Tensor], feats: Sequence[Features], times: torch.Tensor,
                      prior: PriorFlows, with_key: bool = True, sharp: bool = False,
                      time_chunk: int = 0) -> tuple[torch.Tensor | None, Iterator[torch.Tensor]]:
        """As :meth:`restore`, with the in-between frames as they are made: an iterator of [B, t, 3, H, W], at
        most ``time_chunk`` times each (all at once for 0), in the order of ``times``. A caller that stores
        each part as it comes never holds all of them at once in the network's precision."""
        if len(frames) != 4 or len(feats) != 4:
            raise ValueError("restore() takes a window of exactly 4 frames and their features")
        f0, f1 = frames[1], frames[2]
        e0, e1 = feats[1], feats[2]
        b, _, h, w = f0.shape
        times = times.to(device=f0.device, dtype=f0.dtype)
        if times.dim() == 1:
            times = times.unsqueeze(0).expand(b, -1)
        n_t = times.shape[1]

        key = None
        m01 = None
        if n_t or with_key:
            m01 = self.pair(e0[EIGHTH], e1[EIGHTH], prior.f01)
        if with_key:
            assert m01 is not None
            key = self.restorer(*self.key_inputs(frames, feats, prior, m01))
        if n_t == 0:
            return key, iter([f0.new_zeros((b, 0, 3, h, w))])
        m10 = self.pair(e1[EIGHTH], e0[EIGHTH], prior.f10)
        step = time_chunk if 0 < time_chunk < n_t else n_t
        return key, (self._inter(f0, f1, e0, e1, m01, m10, times[:, i:i + step], sharp)
                     for i in range(0, n_t, step))

    def key_inputs(self, frames: Sequence[torch.Tensor], feats: Sequence[Features], prior: PriorFlows,
                   m01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None,
                                               torch.Tensor | None]:
        """What the restoration path takes for the key frame F(i): F(i), F(i-1) and F(i+1) aligned to it (by the
        prior and by the corrected motion ``m01``), the latents of all three for the view attention, and the
        two flows for the motion input (each when the network has it)."""
        views = None
        if self.config.view_attention:
            views = torch.stack((warp_latent(feats[0][EIGHTH], prior.f0p), feats[1][EIGHTH],
                                 warp_latent(feats[2][EIGHTH], m01)), dim=1)
        motion = torch.cat((prior.f0p, m01), dim=1) if self.config.restore_motion else None
        return frames[1], backward_warp(frames[0], prior.f0p), backward_warp(frames[2], m01), views, motion

    def forward(self, frames: torch.Tensor, times: torch.Tensor, prior: PriorFlows,
                sharp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [B, 4, 3, H, W]; times [T] or [B, T]. Returns (key [B,3,H,W], inter [B,T,3,H,W])."""
        if frames.shape[1] != 4:
            raise ValueError(f"expected a window of 4 frames, got {frames.shape[1]}")
        feats = window_features(self.encode, frames)
        key, inter = self.restore([frames[:, i] for i in range(4)], feats, times, prior, with_key=True, sharp=sharp)
        assert key is not None
        return key, inter

    def _inter(self, f0, f1, e0, e1, m01, m10, times, sharp: bool) -> torch.Tensor:
        b, _, h, w = f0.shape
        n_t = times.shape[1]

        def rep(x: torch.Tensor) -> torch.Tensor:
            return x.repeat_interleave(n_t, dim=0)

        tau0 = times.reshape(b * n_t, 1, 1, 1)
        taus = (tau0, 1.0 - tau0)
        # side 0 samples F(i) along t * M10, side 1 samples F(i+1) along (1 - t) * M01
        flows = [taus[0] * rep(m10), taus[1] * rep(m01)]
        level = QUARTER if self.config.head_scale == 4 else EIGHTH  # the flow head's features
        size4 = e0[level].shape[-2:]
        f4 = [rep(e0[level]), rep(e1[level])]
        flows4 = [resize_flow(fl, tuple(size4)) for fl in flows]
        warped4 = [backward_warp(f4[s], flows4[s]) for s in (0, 1)]
        logits = []
        for s in (0, 1):
            d, logit = self.flow_head(warped4[s], warped4[1 - s], flows4[s], taus[s].expand(-1, 1, *size4), sharp)
            # d is in full-resolution pixels (so a step of the optimizer moves the flow by as much at any scale)
            flows[s] = flows[s] + resize_map(d, (h, w))
            logits.append(logit)
        prior_logit = torch.log(taus[0].clamp_min(1e-4)) - torch.log(taus[1].clamp_min(1e-4))
        # w0 = sigmoid(l0 - l1 - prior_logit): with zero logits, 1 - t for F(i) and t for F(i+1)
        w0 = torch.sigmoid((logits[0] - logits[1]).float() - prior_logit.float()).to(f0.dtype)
        w0 = resize_map(w0, (h, w))
        warped = [backward_warp(rep(f0), flows[0]), backward_warp(rep(f1), flows[1])]
        blend = w0 * warped[0] + (1.0 - w0) * warped[1]
        if sharp:
            out = self.refiner(blend, w0, warped[0], warped[1])
        else:
            views = None
            if self.config.view_attention:
                views = torch.stack((warp_latent(rep(e0[EIGHTH]), flows[0]), warp_latent(rep(e1[EIGHTH]), flows[1])),
                                    dim=1)
            motion = torch.cat(flows, dim=1) if self.config.restore_motion else None
            out = self.restorer(blend, warped[0], warped[1], views, motion)
        return out.reshape(b, n_t, 3, h, w)


def join_parts(parts: Iterable[torch.Tensor]) -> torch.Tensor:
    """The in-between frames of ``restore_parts``, part by part, as one [B, T, 3, H, W] tensor."""
    chunks = list(parts)
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=1)


def warp_latent(latent: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """A latent [B, C, h, w] warped by a full-resolution flow [B, 2, H, W] (resized to the latent's scale)."""
    return backward_warp(latent, resize_flow(flow, tuple(latent.shape[-2:])).to(latent.dtype))


def build_prior_model(cfg: PriorConfig | str) -> PriorNet:
    if isinstance(cfg, str):
        if cfg not in PRIOR_CONFIGS:
            raise ValueError(f"unknown model size {cfg!r}; choose from {', '.join(PRIOR_CONFIGS)}")
        cfg = PRIOR_CONFIGS[cfg]
    return PriorNet(cfg)
