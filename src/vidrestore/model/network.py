"""The joint deblurring + interpolation network.

A window of four frames F(i-1), F(i), F(i+1), F(i+2) goes in, with any number of times t in (0, 1).
Out come the sharp frame at F(i)'s time and one sharp frame per t between F(i) and F(i+1).

Data flow::

    every frame ──encoder──> (f1 @1/2, f2 @1/4, x @1/8, matching descriptors @1/8, 1/16...)
                                                                    once per frame, cacheable
    every IFA:  (options.coarse_levels > 0) fixed-descriptor matching at 1/16 (1/32, ...) centres the
                1/8 attention window of each pixel on its coarse motion (large motion)
    key frame:  ALA: self(x_i) + cross(x_i | x_i-1, x_i+1, x_i+2)   global context, linear in HW
                IFA(x_i, x_i±1) -> neighbour appearance + motion    local alignment
                fuse -> decoder with warped neighbour skips -> F(i) + residual
    pair (i, i+1), once per window:
                IFA both ways -> appearance A0, A1 and motion M01, M10
                ALA pair term: self(x_i) + cross(x_i|x_i+1) + self(x_i+1) + cross(x_i+1|x_i)
    per t (the light part):
                flows to t: -t*M01 and -(1-t)*M10, refined by a small head (shared by both sides)
                coarse-to-fine (config.fine_flow > 0): flows and blend logits carried to 1/4 scale and
                    refined there from warped 1/4 features and their local correlation
                    (config.half_flow > 0): once more at 1/2 scale, from warped 1/2 features and frames
                flow polish (options.flow_polish > 0): parameter-free symmetric Lucas-Kanade steps on the
                    frames' luma (full or reduced resolution) for the sub-pixel precision the grids lack
                warp both frames, blend with learned weights, refiner adds a residual
                still-region gate (options.static_gate > 0): where the pair's two frames agree better than
                    the two warped frames do, move the result toward the frames' plain average

Both sides of the pair go through the same weights and are combined by sums and a softmax,
so swapping the pair and replacing t by 1-t gives the same in-between frame.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrestore.model.attention import (
    AdaptiveLatentAttention,
    InterFrameAttention,
    coarse_descriptors,
    coarse_motion,
    patch_descriptors,
    window_products,
)
from vidrestore.model.filters import box_mean
from vidrestore.model.layers import ResBlock, act, check_multiple, conv, window_features, zero_init
from vidrestore.model.polish import luma, polish_flows
from vidrestore.model.warp import backward_warp, resize_flow

# (f1 @1/2, f2 @1/4, latent x @1/8, matching descriptors @1/8, then options.coarse_levels
#  coarse matching descriptors @1/16, 1/32, ...)
Features = tuple[torch.Tensor, ...]

# the coarse levels' cosine sharpness (v3's learned 1/8 value is about this, exp(3) = 20) and the radius
# of their cost aggregation (2: a 5x5 neighbourhood, 80x80 full-resolution pixels at 1/16)
COARSE_SHARPNESS = 20.0
COARSE_AGGREGATE = 2

# the still-region gate's sigmoid slope, on the difference between the two hypotheses' mean absolute frame
# differences (images in [0, 1]): about one 8-bit code value
STILL_SLOPE = 0.005


@dataclass(frozen=True)
class ModelConfig:
    """Which tensors a network has. Stored as JSON in every weights file's metadata."""

    name: str
    channels: tuple[int, int, int]  # encoder widths at 1/2, 1/4, 1/8 scale
    latent_blocks: int = 2  # residual blocks on the 1/8 latent (encoder and key fusion)
    spatial_maps: int = 4  # M in the factorized attention
    temporal_maps: int = 2  # N in the factorized attention
    ifa_window: int = 7  # inter-frame attention window (odd), in 1/8-scale pixels
    ifa_dim: int = 32
    head_channels: int = 48  # flow head and refiner width at 1/8 and 1/4
    motion_prior: float = 1.5  # inter-frame attention's penalty per squared 1/8-scale offset (trained with)
    fine_flow: int = 0  # width of the per-t flow refinement at 1/4 scale; 0 = flows stay on the 1/8 grid
    half_flow: int = 0  # width of the last per-t flow refinement at 1/2 scale; 0 = none

    @property
    def multiple(self) -> int:
        """Height and width given to the model must be multiples of this."""
        return 8


@dataclass(frozen=True)
class InferenceOptions:
    """The network's parameter-free stages and their settings: they add no tensors, so the same weights
    run under any of them. The defaults are what training uses; a registry entry records the options its
    weights were measured with, and a caller may override them."""

    coarse_levels: int = 1  # descriptor matching levels below 1/8 (1/16, 1/32, ...) that centre the
    #                         inter-frame attention's window on large motion; 0 = none
    coarse_prior: float = 0.5  # their penalty per squared offset (in each level's pixels)
    coarse_gain: float = 0.1  # a coarse level moves a pixel only where its best cosine beats staying by this
    coarse_match: float = 0.65  # ... and where that best (aggregated) cosine is above this
    static_gate: float = 0.05  # still-region gate (see ``still_gate``): the scale of the pair's frame
    #                            difference it still acts on (images in [0, 1]); 0 = off
    static_kernel: int = 5  # the gate's box filter, odd
    flow_polish: int = 2  # sub-pixel polish of the final flows (see ``polish_flows``): its Gauss-Newton
    #                       steps; 0 = off
    polish_kernel: int = 7  # its box, odd, in pixels of the scale it works at
    polish_scale: int = 2  # it works on the frames' luma downscaled by this (1: full resolution, 4x the cost)
    polish_damping: float = 1e-4  # added to its normal matrix (box mean of squared gradients, images in [0, 1])
    polish_step: float = 1.0  # longest step, in full-resolution pixels of motion between the pair
    refine_sharp: bool = True  # run the refiner on the in-between frames of sharp inputs (``restore(sharp=True)``,
    #                            the pipeline's interp mode); False saves its time where it measured no gain

    def __post_init__(self) -> None:
        if self.coarse_levels < 0:
            raise ValueError(f"coarse_levels must be >= 0, got {self.coarse_levels}")
        if self.static_gate < 0 or self.static_kernel < 1 or self.static_kernel % 2 != 1:
            raise ValueError(f"static_gate must be >= 0 and static_kernel odd, got {self.static_gate}, "
                             f"{self.static_kernel}")
        if (self.flow_polish < 0 or self.polish_kernel < 1 or self.polish_kernel % 2 != 1
                or self.polish_scale not in (1, 2, 4, 8)):
            raise ValueError(f"flow_polish must be >= 0, polish_kernel odd and polish_scale 1, 2, 4 or 8, got "
                             f"{self.flow_polish}, {self.polish_kernel}, {self.polish_scale}")


# Weights files written before 0.2.0 kept these switches in their model config, where a missing field
# meant "off": read such a file's options with these defaults for the fields it does not set.
LEGACY_OPTIONS = InferenceOptions(coarse_levels=0, static_gate=0.0, flow_polish=0)
OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(InferenceOptions))


CONFIGS: dict[str, ModelConfig] = {
    "default": ModelConfig("default", (32, 64, 128), latent_blocks=3, spatial_maps=8, temporal_maps=3,
                           ifa_window=9, ifa_dim=48, head_channels=96, fine_flow=48, half_flow=24),
    "small": ModelConfig("small", (16, 32, 64), latent_blocks=2, spatial_maps=4, temporal_maps=2,
                         ifa_window=7, ifa_dim=32, head_channels=48, fine_flow=16),
    "tiny": ModelConfig("tiny", (8, 12, 16), latent_blocks=1, spatial_maps=2, temporal_maps=2,
                        ifa_window=5, ifa_dim=8, head_channels=12, fine_flow=8, half_flow=8),
}


def config_to_json(cfg: ModelConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def options_to_json(opts: InferenceOptions) -> str:
    return json.dumps(dataclasses.asdict(opts), sort_keys=True)


def config_from_json(text: str) -> tuple[ModelConfig, dict]:
    """The model config in ``text`` and the inference option fields it also sets (files before 0.2.0)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the model config is not a JSON object")
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(data) - names - OPTION_FIELDS
    if unknown:
        raise ValueError(f"unknown model config fields: {sorted(unknown)}")
    legacy = {k: data.pop(k) for k in list(data) if k in OPTION_FIELDS}
    data["channels"] = tuple(data["channels"])
    return ModelConfig(**data), legacy


def options_from_dict(data: dict, base: InferenceOptions = InferenceOptions()) -> InferenceOptions:
    """``base`` with the fields ``data`` sets; unknown fields are an error."""
    unknown = set(data) - OPTION_FIELDS
    if unknown:
        raise ValueError(f"unknown inference options: {sorted(unknown)}")
    return dataclasses.replace(base, **data)


class Up(nn.Module):
    """x2 upsampling by sub-pixel convolution (1x1: the following 3x3 convs mix space)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv(cin, cout * 4, k=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, coarse_levels: int) -> None:
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.coarse_levels = coarse_levels
        self.s1 = nn.Sequential(conv(3, c1, 2), act(), conv(c1, c1), act())
        self.s2 = nn.Sequential(conv(c1, c2, 2), act(), ResBlock(c2))
        self.s3 = nn.Sequential(conv(c2, c3, 2), act(), *[ResBlock(c3) for _ in range(cfg.latent_blocks)])

    def forward(self, x: torch.Tensor) -> Features:
        f1 = self.s1(x - 0.5)
        f2 = self.s2(f1)
        coarse = coarse_descriptors(x, self.coarse_levels) if self.coarse_levels else []
        return (f1, f2, self.s3(f2), patch_descriptors(x), *coarse)


class KeyBranch(nn.Module):
    """Restores F(i) from its latent, the ALA key term and aligned neighbours."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.fuse = nn.Sequential(conv(4 * c3 + 4, c3), act(), *[ResBlock(c3) for _ in range(cfg.latent_blocks)])
        self.up2 = Up(c3, c2)
        self.mix2 = nn.Sequential(conv(4 * c2, c2), act(), ResBlock(c2))
        self.up1 = Up(c2, c1)
        self.mix1 = nn.Sequential(conv(2 * c1, c1), act(), conv(c1, c1), act())
        self.out = nn.Sequential(zero_init(conv(c1, 3 * 4)), nn.PixelShuffle(2))

    def forward(
        self,
        frame: torch.Tensor,
        feat: Features,
        z: torch.Tensor,
        prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        nxt: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """prev/nxt: (appearance @1/8, motion @1/8, neighbour f2 @1/4)."""
        f1, f2, x = feat[:3]
        app_p, mot_p, f2_p = prev
        app_n, mot_n, f2_n = nxt
        h = self.fuse(torch.cat((x, z, app_p, app_n, mot_p, mot_n), dim=1))
        size2 = f2.shape[-2:]
        w_p = backward_warp(f2_p, resize_flow(mot_p, size2))
        w_n = backward_warp(f2_n, resize_flow(mot_n, size2))
        h = self.mix2(torch.cat((self.up2(h), f2, w_p, w_n), dim=1))
        h = self.mix1(torch.cat((self.up1(h), f1), dim=1))
        return frame + self.out(h)


class FlowHead(nn.Module):
    """Refines one side's flow to time t; returns (delta flow, blend logit, context)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c3, ch = cfg.channels[2], cfg.head_channels
        self.body = nn.Sequential(conv(3 * c3 + 3, ch), act(), conv(ch, ch), act(), conv(ch, ch), act())
        self.delta = zero_init(conv(ch, 3))
        self.ctx = conv(ch, cfg.channels[1], k=1)

    def forward(self, own: torch.Tensor, other: torch.Tensor, z: torch.Tensor, flow: torch.Tensor, tau: torch.Tensor):
        h = self.body(torch.cat((own, other, z, flow, tau), dim=1))
        d = self.delta(h)
        return d[:, :2], d[:, 2:3], self.ctx(h)


def local_correlation(a: torch.Tensor, b: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Mean over channels of a(p) * b(p + o) for every offset o in a (2r+1)^2 square: [B, (2r+1)^2, H, W]."""
    return window_products(a, b, radius) / a.shape[1]


class FineFlow(nn.Module):
    """Per-t refinement of one side's flow and blend logit on the 1/4 grid (coarse-to-fine).

    Sees its own and the other side's 1/4-scale features warped to t, their local correlation, the
    1/8-scale head's context and its own flow, so it can correct what the 1/8 grid cannot resolve.
    Shared by both sides, like the 1/8 head, which keeps the pair symmetric.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c2, ch = cfg.channels[1], cfg.fine_flow
        self.body = nn.Sequential(
            conv(3 * c2 + 9 + 3, ch, k=1), act(), conv(ch, ch), act(), conv(ch, ch), act()
        )
        self.delta = zero_init(conv(ch, 3))

    def forward(self, own: torch.Tensor, other: torch.Tensor, ctx: torch.Tensor, flow: torch.Tensor, tau: torch.Tensor):
        corr = local_correlation(own, other)
        d = self.delta(self.body(torch.cat((own, other, ctx, corr, flow, tau), dim=1)))
        return d[:, :2], d[:, 2:3]


class HalfFlow(nn.Module):
    """Per-t refinement of one side's flow and blend logit on the 1/2 grid, the last coarse-to-fine step.

    Sees both sides' 1/2-scale features and half-size frames warped to t, the local correlation of the
    features (a 3x3 neighbourhood here is +-2 full-resolution pixels, so it fixes the sub-pixel and
    thin-structure errors the 1/4 grid leaves), its own flow and the current blend logit difference.
    Shared by both sides, like the coarser stages.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c1, ch = cfg.channels[0], cfg.half_flow
        self.features = c1  # own/other: c1 feature channels, then the 3 of the half-size frame
        self.body = nn.Sequential(
            conv(2 * (c1 + 3) + 9 + 4, ch, k=1), act(), conv(ch, ch), act(), conv(ch, ch), act()
        )
        self.delta = zero_init(conv(ch, 3))

    def forward(self, own: torch.Tensor, other: torch.Tensor, flow: torch.Tensor, logit_diff: torch.Tensor,
                tau: torch.Tensor):
        c = self.features
        corr = local_correlation(own[:, :c], other[:, :c])
        d = self.delta(self.body(torch.cat((own, other, corr, flow, logit_diff, tau), dim=1)))
        return d[:, :2], d[:, 2:3]


class Refiner(nn.Module):
    """Adds a residual to the warped blend. Each side is embedded by shared weights and summed."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c1, c2, _ = cfg.channels
        self.side2 = nn.Sequential(conv(2 * c2, c2), act())
        self.body2 = nn.Sequential(ResBlock(c2))
        self.up = Up(c2, c1)
        self.side1 = nn.Sequential(conv(c1 + 3, c1), act())
        self.body1 = nn.Sequential(conv(2 * c1 + 3, c1), act(), conv(c1, c1), act())
        self.out = nn.Sequential(zero_init(conv(c1, 3 * 4)), nn.PixelShuffle(2))

    def forward(self, blend: torch.Tensor, sides: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """sides: per side (warped f1 @1/2 with warped frame @1/2, warped f2 @1/4, context @1/4)."""
        h2 = sum(self.side2(torch.cat((wf2, ctx), dim=1)) for _, wf2, ctx in sides)
        h2 = self.body2(h2)
        g1 = sum(self.side1(wf1) for wf1, _, _ in sides)
        blend_half = F.avg_pool2d(blend, 2)
        h1 = self.body1(torch.cat((self.up(h2), g1, blend_half), dim=1))
        return blend + self.out(h1)


class VidRestoreNet(nn.Module):
    """The network: ``config`` says which tensors exist, ``options`` how its parameter-free stages run."""

    def __init__(self, config: ModelConfig, options: InferenceOptions = InferenceOptions()) -> None:
        super().__init__()
        self.config = config
        self.options = options
        c3 = config.channels[2]
        self.encoder = Encoder(config, options.coarse_levels)
        self.ala = AdaptiveLatentAttention(c3, config.spatial_maps, config.temporal_maps)
        self.ifa = InterFrameAttention(c3, config.ifa_dim, config.ifa_window, config.motion_prior)
        self.key_branch = KeyBranch(config)
        self.flow_head = FlowHead(config)
        self.fine_flow = FineFlow(config) if config.fine_flow > 0 else None
        self.half_flow = HalfFlow(config) if config.half_flow > 0 else None
        self.refiner = Refiner(config)

    # -- per frame -------------------------------------------------------------------------
    def encode(self, frame: torch.Tensor) -> Features:
        """frame [B, 3, H, W] in [0, 1], H and W multiples of ``config.multiple``."""
        check_multiple(frame, self.config.multiple)
        return self.encoder(frame)

    # -- per window ------------------------------------------------------------------------
    def restore(self, frames: Sequence[torch.Tensor], feats: Sequence[Features], times: torch.Tensor,
                with_key: bool = True, sharp: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        """One window F(i-1), F(i), F(i+1), F(i+2) with its features -> (key [B,3,H,W] or None, inter
        [B,T,3,H,W]). ``sharp``: the caller knows the inputs are sharp (interp mode); with
        ``options.refine_sharp`` False the in-between frames are then the warped blend without the refiner."""
        key, inter, _ = self._window(frames, feats, times, with_key, sharp)
        return key, inter

    def restore_with_flows(self, frames: Sequence[torch.Tensor], feats: Sequence[Features], times: torch.Tensor):
        """``restore`` (key frame included) and each flow stage's output (1/8 grid, then 1/4 and 1/2 where
        those stages exist), each [B,T,2,2,h,w]: per time, side 0's flow to F(i) and side 1's to F(i+1), in
        pixels of that grid. For training, which supervises the flows."""
        return self._window(frames, feats, times, True, False)

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [B, 4, 3, H, W]; times [T] or [B, T]. Returns (key [B,3,H,W], inter [B,T,3,H,W])."""
        if frames.shape[1] != 4:
            raise ValueError(f"expected a window of 4 frames, got {frames.shape[1]}")
        feats = window_features(self.encode, frames)
        key, inter = self.restore([frames[:, i] for i in range(4)], feats, times, with_key=True)
        assert key is not None
        return key, inter

    # -- the parts of a window -------------------------------------------------------------
    def _ifa(self, fa: Features, fb: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Inter-frame attention of a frame's features over another's: (appearance, motion)."""
        o = self.options
        init = None
        if o.coarse_levels:
            init = coarse_motion(list(fa[4:]), list(fb[4:]), self.ifa.offsets, COARSE_SHARPNESS, o.coarse_prior,
                                 tuple(fa[2].shape[-2:]), o.coarse_gain, COARSE_AGGREGATE, o.coarse_match)
        return self.ifa(fa[2], fb[2], fa[3], fb[3], init)

    def _window(self, frames: Sequence[torch.Tensor], feats: Sequence[Features], times: torch.Tensor,
                with_key: bool, sharp: bool):
        if len(frames) != 4 or len(feats) != 4:
            raise ValueError("restore() takes a window of exactly 4 frames and their features")
        f0, f1 = frames[1], frames[2]
        e_prev, e0, e1, e_next = feats
        x0, x1 = e0[2], e1[2]
        b = f0.shape[0]
        times = times.to(device=f0.device, dtype=f0.dtype)
        if times.dim() == 1:
            times = times.unsqueeze(0).expand(b, -1)
        n_t = times.shape[1]

        self0 = self.ala.self_term(x0)
        app01, m01 = self._ifa(e0, e1)
        key = None
        if with_key:
            app0p, m0p = self._ifa(e0, e_prev)
            z_key = self.ala.key(x0, [e_prev[2], x1, e_next[2]], self_x=self0)
            key = self.key_branch(f0, e0, z_key, (app0p, m0p, e_prev[1]), (app01, m01, e1[1]))
        if n_t == 0:
            return key, f0.new_zeros((b, 0, 3, *f0.shape[-2:])), []

        app10, m10 = self._ifa(e1, e0)
        z_pair = self.ala.pair(x0, x1, self_x0=self0, self_x1=self.ala.self_term(x1))
        pair = _Pair(f0, f1, e0, e1, times.reshape(b * n_t, 1, 1, 1), n_t)
        flows, logits, ctxs, stages = self._flows(pair, (app01, app10), (m01, m10), z_pair)
        return key, self._synthesize(pair, flows, logits, ctxs, sharp), stages

    def _flows(self, pair: "_Pair", apps: tuple[torch.Tensor, torch.Tensor], motions: tuple[torch.Tensor, torch.Tensor],
               z_pair: torch.Tensor):
        """Both sides' flows to each t, coarse to fine, with their blend logits and the 1/8 head's context
        (at 1/4 scale); and each stage's flows as [B,T,2,2,h,w] (``restore_with_flows``)."""
        rep, taus = pair.rep, pair.taus
        b, n_t = pair.f0.shape[0], pair.n_t
        stages: list[torch.Tensor] = []

        def record(fl: list[torch.Tensor]) -> None:
            stages.append(torch.stack(fl, dim=1).reshape(b, n_t, 2, 2, *fl[0].shape[-2:]))

        apps = tuple(rep(a) for a in apps)
        motions = tuple(rep(m) for m in motions)
        zp = rep(z_pair)
        lh, lw = pair.e0[2].shape[-2:]
        init_flows = [-tau * m for tau, m in zip(taus, motions)]
        warped_app = [backward_warp(a, fl) for a, fl in zip(apps, init_flows)]
        logits, ctxs, flows = [], [], []
        for s in (0, 1):
            tau_map = taus[s].expand(-1, 1, lh, lw)
            d, logit, ctx = self.flow_head(warped_app[s], warped_app[1 - s], zp, init_flows[s], tau_map)
            flows.append(init_flows[s] + d)
            logits.append(logit)
            ctxs.append(ctx)
        record(flows)

        size2 = pair.size2
        ctxs = [F.interpolate(c, size=size2, mode="bilinear", align_corners=False) for c in ctxs]
        if self.fine_flow is not None:
            # coarse-to-fine: carry flows and blend logits to the 1/4 grid and refine them there
            flows = [resize_flow(fl, size2) for fl in flows]
            logits = [F.interpolate(lg, size=size2, mode="bilinear", align_corners=False) for lg in logits]
            wf2 = [backward_warp(pair.f2_reps[s], flows[s]) for s in (0, 1)]
            _refine(self.fine_flow, flows, logits, taus, size2, lambda s: (wf2[s], wf2[1 - s], ctxs[s], flows[s]))
            record(flows)

        if self.half_flow is not None:
            # last coarse-to-fine step: flows and blend logits on the 1/2 grid
            size1 = pair.size1
            flows = [resize_flow(fl, size1) for fl in flows]
            logits = [F.interpolate(lg, size=size1, mode="bilinear", align_corners=False) for lg in logits]
            halves = [rep(torch.cat((e[0], F.avg_pool2d(im, 2)), dim=1)) for e, im in zip(pair.enc, pair.imgs)]
            wh = [backward_warp(halves[s], flows[s]) for s in (0, 1)]
            logit_diffs = [logits[0] - logits[1], logits[1] - logits[0]]
            _refine(self.half_flow, flows, logits, taus, size1, lambda s: (wh[s], wh[1 - s], flows[s], logit_diffs[s]))
            record(flows)
        return flows, logits, ctxs, stages

    def _polish(self, pair: "_Pair", flows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Sub-pixel precision the grids cannot give: fixed classical steps on the luma at 1/polish_scale."""
        o = self.options
        grays = [luma(f) for f in pair.imgs]
        if o.polish_scale > 1:
            grays = [F.avg_pool2d(g, o.polish_scale) for g in grays]
        at_p = [resize_flow(fl, grays[0].shape[-2:]) for fl in flows]
        with torch.no_grad():  # training sees the steps as a given correction: no graph through them
            polished = polish_flows(pair.rep(grays[0]), pair.rep(grays[1]), at_p[0].detach(), at_p[1].detach(),
                                    pair.taus[0], o.flow_polish, o.polish_kernel, o.polish_damping,
                                    o.polish_step / o.polish_scale)
        # gradients reach the network's own flows unchanged
        return [fl + (p - fl).detach() for fl, p in zip(at_p, polished)]

    def _synthesize(self, pair: "_Pair", flows: list[torch.Tensor], logits: list[torch.Tensor],
                    ctxs: list[torch.Tensor], sharp: bool) -> torch.Tensor:
        """Warp both frames to each t, blend, refine and gate: [B, T, 3, H, W]."""
        o = self.options
        f0, f1, rep = pair.f0, pair.f1, pair.rep
        h, w = f0.shape[-2:]
        weights = torch.softmax(torch.cat(logits, dim=1).float(), dim=1).to(f0.dtype)
        weights = F.interpolate(weights, size=(h, w), mode="bilinear", align_corners=False)
        if o.flow_polish > 0:
            flows = self._polish(pair, flows)
        refine = o.refine_sharp or not sharp
        imgs = (rep(f0), rep(f1))
        sides = []
        warped_imgs = []
        blend = 0
        for s in (0, 1):
            flow_full = resize_flow(flows[s], (h, w))
            warped = backward_warp(imgs[s], flow_full)
            warped_imgs.append(warped)
            blend = blend + weights[:, s : s + 1] * warped
            if refine:
                wf1 = backward_warp(rep(pair.enc[s][0]), resize_flow(flows[s], pair.size1))
                wimg_half = F.avg_pool2d(warped, 2)
                wf2_s = backward_warp(pair.f2_reps[s], resize_flow(flows[s], pair.size2))
                sides.append((torch.cat((wf1, wimg_half), dim=1), wf2_s, ctxs[s]))
        inter = self.refiner(blend, sides) if refine else blend
        if o.static_gate > 0:
            k = o.static_kernel
            # a fixed rule, not something to learn through: training sees it as a given per-pixel mask
            g = still_gate(rep(box_difference(f0, f1, k)), box_difference(*warped_imgs, k), o.static_gate)
            g = g.detach()
            inter = inter + g * (rep(0.5 * (f0 + f1)) - inter)
        return inter.reshape(f0.shape[0], pair.n_t, 3, h, w)


def _refine(stage: nn.Module, flows: list[torch.Tensor], logits: list[torch.Tensor], taus: tuple[torch.Tensor, ...],
            size, inputs) -> None:
    """One coarse-to-fine step, side 0 then side 1: ``stage(*inputs(s), tau map)`` corrects that side's flow
    and blend logit in place (``inputs`` sees side 0's correction when side 1 runs, as the stage is
    shared)."""
    for s in (0, 1):
        d, dl = stage(*inputs(s), taus[s].expand(-1, 1, *size))
        flows[s] = flows[s] + d
        logits[s] = logits[s] + dl


class _Pair:
    """The pair (F(i), F(i+1)) of a window, repeated for the T times of its light, per-t part."""

    def __init__(self, f0: torch.Tensor, f1: torch.Tensor, e0: Features, e1: Features, tau0: torch.Tensor,
                 n_t: int) -> None:
        self.f0, self.f1, self.e0, self.e1, self.n_t = f0, f1, e0, e1, n_t
        self.taus = (tau0, 1.0 - tau0)
        self.imgs = (f0, f1)
        self.enc = (e0, e1)
        self.size1 = e0[0].shape[-2:]
        self.size2 = e0[1].shape[-2:]
        self.f2_reps = [self.rep(e[1]) for e in self.enc]

    def rep(self, t: torch.Tensor) -> torch.Tensor:
        """[B, ...] -> [B*T, ...], each item repeated for its T times."""
        return t.repeat_interleave(self.n_t, dim=0)


def box_difference(a: torch.Tensor, b: torch.Tensor, kernel: int) -> torch.Tensor:
    """[B, 1, H, W]: the mean absolute difference of two images over the colour channels and a ``kernel`` x
    ``kernel`` box (at the borders, over the part of the box inside the frame)."""
    return box_mean((a - b).abs().mean(dim=1, keepdim=True), kernel)


def still_gate(d_still: torch.Tensor, d_flow: torch.Tensor, scale: float) -> torch.Tensor:
    """Per pixel, the weight in [0, 1] of the pair's plain average against the network's in-between frame.

    Two hypotheses for a pixel: it does not move, which holds where the pair's two frames agree (``d_still``,
    their ``box_difference``), or it moves as the network's flows say, which holds where the two frames
    warped to t agree (``d_flow``). The gate is exp(-(d_still / scale)^2) * sigmoid((d_flow - d_still) /
    STILL_SLOPE): near 1 only where the frames agree and agree better unwarped than warped. The flows come
    from the 1/8 and 1/4 grids, so next to a moving object they bleed over its edge and drag the still
    background along (a halo); there the gate puts the background back. Where the flows are right the warped
    frames agree at least as well, and the network's frame stays. Parameter-free; symmetric in the two sides.
    """
    dtype = d_flow.dtype
    d_still, d_flow = d_still.float(), d_flow.float()
    g = torch.exp(-(d_still / scale).square()) * torch.sigmoid((d_flow - d_still) / STILL_SLOPE)
    return g.to(dtype)


def build_model(cfg: ModelConfig | str, options: InferenceOptions = InferenceOptions()) -> VidRestoreNet:
    if isinstance(cfg, str):
        if cfg not in CONFIGS:
            raise ValueError(f"unknown model size {cfg!r}; choose from {', '.join(CONFIGS)}")
        cfg = CONFIGS[cfg]
    return VidRestoreNet(cfg, options)


def with_options(model: VidRestoreNet, options: InferenceOptions | None = None, **changes) -> VidRestoreNet:
    """The same tensors under other inference options (``options``, else ``model.options`` with ``changes``):
    a new model on the same device, in the same train/eval mode, sharing no state with ``model``."""
    opts = options if options is not None else dataclasses.replace(model.options, **changes)
    other = VidRestoreNet(model.config, opts)
    other.load_state_dict(model.state_dict())
    param = next(model.parameters(), None)
    if param is not None:
        other = other.to(device=param.device, dtype=param.dtype)
    return other.train(model.training)
