"""Attention operators on frame latents.

* :class:`FactorizedSTAttention` -- the factorized spatio-temporal attention of Suin & Rajagopalan:
  M spatial attention maps per context frame squeeze each frame into M global descriptors,
  N temporal attention maps mix them over the frames, and a pixelwise softmax over the M*N
  descriptors distributes them back to every pixel of the query frame. Cost is linear in H*W;
  no (T*H*W) x (T*H*W) matrix is ever formed.
* :class:`AdaptiveLatentAttention` -- ALANET's combination of self-attention of a frame's latent
  and cross-attention from its neighbours, built from two factorized operators.
* :class:`InterFrameAttention` -- EMA-VFI-style attention of every pixel of one latent over a
  local window of another: one softmax gives both the aggregated appearance of the other frame
  and a motion vector (the attention-weighted mean of the window offsets). Its logits add to the
  learned query-key term a matching term on fixed, normalised image-patch descriptors, so that
  the attention follows the true motion from the first training step (random latents do not
  match across frames, and a motion learned only through warping gradients is very slow to start).
  Its window can be centred per pixel on a coarse motion estimate (``init``).
* :func:`coarse_motion` -- that estimate: parameter-free coarse-to-fine matching of the same kind of
  descriptors at 1/16 (and 1/32, ...), with cost aggregation and a confidence gate, so that motion
  beyond the 1/8 window (more than 3 cells = 24 px for the small model) is found at all.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrestore.model.warp import backward_warp


class FactorizedSTAttention(nn.Module):
    """Global attention from ``context`` frames to every pixel of ``query``.

    query: [B, C, H, W]; context: [B, T, C, H, W]. Returns [B, C, H, W].
    """

    def __init__(self, channels: int, spatial_maps: int, temporal_maps: int) -> None:
        super().__init__()
        self.m = spatial_maps
        self.n = temporal_maps
        self.f_s = nn.Conv2d(channels, spatial_maps, 1)  # spatial attention logits per context frame
        self.value = nn.Conv2d(channels, channels, 1)
        # temporal logits from the pooled context frame and the pooled query (query-conditioned)
        self.f_t = nn.Linear(2 * channels, temporal_maps)
        self.f_p = nn.Conv2d(channels, spatial_maps * temporal_maps, 3, padding=1)  # pixelwise distribution
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = context.shape
        ctx = context.reshape(b * t, c, h, w)
        # (1) spatial squeeze: softmax over HW for each of the M maps, per frame -> G_s [B, T, M, C]
        a_s = self.f_s(ctx).flatten(2).float().softmax(dim=-1).to(ctx.dtype)  # [BT, M, HW]
        v = self.value(ctx).flatten(2)  # [BT, C, HW]
        g_s = torch.bmm(a_s, v.transpose(1, 2)).reshape(b, t, self.m, c)
        # (2) temporal squeeze: N maps, softmax over T -> G_st [B, N*M, C]
        pooled_ctx = context.mean(dim=(3, 4))  # [B, T, C]
        pooled_q = query.mean(dim=(2, 3)).unsqueeze(1).expand(b, t, c)
        a_t = self.f_t(torch.cat((pooled_ctx, pooled_q), dim=-1)).float().softmax(dim=1).to(ctx.dtype)  # [B, T, N]
        g_st = torch.einsum("btn,btmc->bnmc", a_t, g_s).reshape(b, self.n * self.m, c)
        # (3) pixelwise adaptive distribution over the M*N descriptors
        a_p = self.f_p(query).flatten(2).float().softmax(dim=1).to(ctx.dtype)  # [B, MN, HW]
        y = torch.bmm(g_st.transpose(1, 2), a_p).reshape(b, c, h, w)
        return self.proj(y)


class AdaptiveLatentAttention(nn.Module):
    """ALANET's adaptive latent attention.

    ``self_term(x)``  = M_S(x | x): x attends to itself.
    ``cross_term(x, others)`` = sum_j M_C(x_j | x): x queries its neighbours; the factorized
    operator's temporal maps weigh the neighbours adaptively.
    Key frame:   z_i    = M_S(x_i|x_i) + sum_{j in Q} M_C(x_j|x_i)
    In-between:  z_i+.5 = M_S(x_i|x_i) + M_C(x_i|x_i+1) + M_S(x_i+1|x_i+1) + M_C(x_i+1|x_i)
    """

    def __init__(self, channels: int, spatial_maps: int, temporal_maps: int) -> None:
        super().__init__()
        self.self_attn = FactorizedSTAttention(channels, spatial_maps, 1)
        self.cross_attn = FactorizedSTAttention(channels, spatial_maps, temporal_maps)

    def self_term(self, x: torch.Tensor) -> torch.Tensor:
        return self.self_attn(x, x.unsqueeze(1))

    def cross_term(self, x: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
        return self.cross_attn(x, torch.stack(others, dim=1))

    def key(self, x: torch.Tensor, neighbours: list[torch.Tensor], self_x: torch.Tensor | None = None) -> torch.Tensor:
        s = self.self_term(x) if self_x is None else self_x
        return s + self.cross_term(x, neighbours)

    def pair(self, x0: torch.Tensor, x1: torch.Tensor, self_x0: torch.Tensor | None = None,
             self_x1: torch.Tensor | None = None) -> torch.Tensor:
        s0 = self.self_term(x0) if self_x0 is None else self_x0
        s1 = self.self_term(x1) if self_x1 is None else self_x1
        return s0 + self.cross_term(x0, [x1]) + s1 + self.cross_term(x1, [x0])


class InterFrameAttention(nn.Module):
    """Attention of each pixel of ``a`` over a ``window`` x ``window`` neighbourhood in ``b``.

    Returns (appearance, motion): appearance [B, C, H, W] is ``a`` enhanced with the attended
    values of ``b``; motion [B, 2, H, W] is the attention-weighted mean offset (x, y) in pixels
    of this latent's grid, i.e. where the content of ``a`` at p lies in ``b``.
    """

    def __init__(self, channels: int, dim: int, window: int, motion_prior: float = 0.0) -> None:
        super().__init__()
        if window % 2 != 1:
            raise ValueError("inter-frame attention window must be odd")
        self.window = window
        self.dim = dim
        self.norm = nn.GroupNorm(1, channels)
        self.q = nn.Conv2d(channels, dim, 1)
        self.k = nn.Conv2d(channels, dim, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        # sharpness of the descriptor-matching term (log scale, learned)
        self.log_match = nn.Parameter(torch.tensor(3.0))
        r = window // 2
        oy, ox = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        self.register_buffer("offsets", torch.stack((ox.flatten(), oy.flatten()), 0).float(), persistent=False)
        # a prior for small motion: -prior * |offset|^2 on the logits, so that among near-equal
        # matches (flat or repetitive texture) the attention prefers the nearest one
        self.register_buffer("prior", (-motion_prior * (self.offsets**2).sum(0)).view(1, -1, 1), persistent=False)

    def forward(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        desc_a: torch.Tensor | None = None,
        desc_b: torch.Tensor | None = None,
        init: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """a, b: latents [B, C, H, W]; desc_a, desc_b: unit-norm patch descriptors [B, D, H, W] or None;
        init: a coarse motion estimate [B, 2, H, W] (this grid's pixels) to centre every window on, or None.
        With ``init`` the returned motion is ``init`` plus the attention's offset within the window."""
        n, c, h, w = a.shape
        na, nb = self.norm(a), self.norm(b)
        if init is not None:
            # centre each pixel's window on its coarse estimate: sample b (and its descriptors) at p + init,
            # then look at the usual offsets around that (PWC-style; exact where init is locally constant)
            nb = backward_warp(nb, init)
            if desc_b is not None:
                desc_b = backward_warp(desc_b, init.to(desc_b.dtype))
        # one dot product per offset covers both logit terms:
        # <q, k> / sqrt(dim) + exp(log_match) * <desc_a, desc_b>  (cosine similarity)
        query = self.q(na) * (self.dim**-0.5)
        key = self.k(nb)
        if desc_a is not None and desc_b is not None:
            query = torch.cat((query, self.log_match.exp().to(desc_a.dtype) * desc_a), dim=1)
            key = torch.cat((key, desc_b.to(key.dtype)), dim=1)
        r = self.window // 2
        logits = window_products(query, key, r)  # [B, K2, H, W]
        logits = logits + self.prior.to(logits.dtype).view(1, -1, 1, 1)
        inside = window_inside(self.offsets, h, w, a.device, init)
        logits = logits.masked_fill(~inside, float("-inf"))  # no matches off the frame
        attn = logits.float().softmax(dim=1)
        attn_v = attn.to(b.dtype)
        agg = torch.zeros_like(a)
        for k, v in enumerate(shifted_views(self.v(nb), r)):
            agg.addcmul_(attn_v[:, k:k + 1], v)
        motion = torch.einsum("ok,bkhw->bohw", self.offsets.to(attn.dtype), attn).to(a.dtype)
        if init is not None:
            motion = motion + init
        return a + self.out(agg), motion


def patch_descriptors(frame: torch.Tensor, scale: int = 8) -> torch.Tensor:
    """Fixed matching descriptors on the 1/``scale`` grid: [B, 3*4*9, H/scale, W/scale].

    The frame is averaged to 1/(scale/2), each 2x2 block is stacked into one vector, and the
    vectors of a 3x3 neighbourhood are concatenated; each descriptor is mean-subtracted and
    normalised to unit length, so a dot product is a normalised cross-correlation.
    """
    small = F.avg_pool2d(frame, scale // 2)
    return _normalise_patches(F.pixel_unshuffle(small, 2))


def shifted_views(x: torch.Tensor, radius: int) -> list[torch.Tensor]:
    """x [B, C, H, W] shifted by every offset of a (2r+1)^2 window, as views of one replicate-padded tensor.

    Element k is x shifted by the k-th offset (row-major: dy, then dx, each from -r to r), i.e. element k
    at p is x(p + offset_k). Nothing of size C x K2 x H x W is materialised (unlike ``F.unfold``), which
    makes this several times faster on CPUs and lighter on memory everywhere.
    """
    h, w = x.shape[-2:]
    k = 2 * radius + 1
    xp = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return [xp[..., dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)]


def window_products(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """sum over channels of a(p) * b(p + o) for every offset o of a (2r+1)^2 window: [B, (2r+1)^2, H, W].

    ``b`` is replicate-padded like :func:`shifted_views`. Both are laid out channels-last, so that every
    offset's dot products (``torch.linalg.vecdot``) reduce over the contiguous last dimension instead of
    the strided channel dimension: the same sums, about half the time on CPUs (640x360 small network:
    16 ms less per window).
    """
    h, w = a.shape[-2:]
    k = 2 * radius + 1
    a_last = a.permute(0, 2, 3, 1).contiguous()
    b_last = F.pad(b, (radius, radius, radius, radius), mode="replicate").permute(0, 2, 3, 1).contiguous()
    return torch.stack(
        [torch.linalg.vecdot(a_last, b_last[:, dy:dy + h, dx:dx + w]) for dy in range(k) for dx in range(k)], dim=1
    )


def window_inside(
    offsets: torch.Tensor, h: int, w: int, device: torch.device, init: torch.Tensor | None = None
) -> torch.Tensor:
    """[1 or B, K2, H, W] bool: which ``offsets`` [2, K2] of each pixel p (plus ``init`` [B, 2, H, W],
    when given, rounded to the nearest pixel) land inside an h x w frame."""
    ys = torch.arange(h, device=device).view(1, 1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, 1, w)
    ox = offsets[0].to(device=device, dtype=torch.long).view(1, -1, 1, 1)
    oy = offsets[1].to(device=device, dtype=torch.long).view(1, -1, 1, 1)
    if init is not None:
        shift = init.detach().round().long()
        xs = xs + shift[:, :1]
        ys = ys + shift[:, 1:]
    return (xs + ox >= 0) & (xs + ox < w) & (ys + oy >= 0) & (ys + oy < h)


def coarse_descriptors(frame: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Patch descriptors for the coarse matching levels below 1/8: 1/16, then 1/32, ... (``levels`` of them).

    Like :func:`patch_descriptors` at twice the scale each time. The frame needs only be a multiple of 8:
    where a grid would be odd, the last row/column of 2x2 blocks is completed by replication, so the
    1/(8*2^l) grid is ceil(H/(8*2^l)) high.
    """
    out = []
    small = F.avg_pool2d(frame, 4)  # the 1/4 grid: each level's 2x2 blocks are taken from this, pooled
    for level in range(1, levels + 1):
        cell = F.avg_pool2d(small, 2**level, ceil_mode=True)  # 1/(4*2^l) grid
        ph, pw = cell.shape[-2] % 2, cell.shape[-1] % 2
        if ph or pw:
            cell = F.pad(cell, (0, pw, 0, ph), mode="replicate")
        out.append(_normalise_patches(F.pixel_unshuffle(cell, 2)))
    return out


def _normalise_patches(d: torch.Tensor) -> torch.Tensor:
    """Stack each pixel's 3x3 neighbourhood of ``d`` [B, C, H, W], mean-subtract and normalise per pixel."""
    b, c, h, w = d.shape
    d = F.unfold(F.pad(d, (1, 1, 1, 1), mode="replicate"), 3).reshape(b, c * 9, h, w)
    d = d - d.mean(dim=1, keepdim=True)
    return d / (d.norm(dim=1, keepdim=True) + 1e-2)


@torch.no_grad()
def coarse_motion(
    descs_a: list[torch.Tensor],
    descs_b: list[torch.Tensor],
    offsets: torch.Tensor,
    sharpness: float,
    prior: float,
    size: tuple[int, int],
    min_gain: float = 0.0,
    aggregate: int = 0,
    min_match: float = -1.0,
) -> torch.Tensor:
    """Parameter-free coarse-to-fine matching of fixed descriptors, coarsest level first.

    descs_*: per level (1/16, 1/32, ...) unit-norm descriptors [B, D, h_l, w_l]. At each level every pixel
    of ``a`` takes the softmax-weighted mean offset of ``sharpness * cosine - prior * |offset|^2`` over the
    window ``offsets`` [2, K2] around the motion carried up from the level below. The cosines are first
    averaged over a (2 * ``aggregate`` + 1)^2 neighbourhood, and a pixel moves only where its best
    (aggregated) cosine beats the one of staying put by more than ``min_gain`` and is itself above
    ``min_match`` (a region that matches nothing well, e.g. under rotation, zoom or motion beyond the
    window, keeps the search at zero). Returns the motion of
    ``a`` into ``b`` on the ``size`` grid (the next finer one, 1/8), in that grid's pixels: [B, 2, *size].
    It only seeds the learned 1/8 attention (which searches around it), so it needs no gradient.
    """
    radius = math.isqrt(offsets.shape[1]) // 2  # from the window's size: no device sync
    penalty = (-prior * (offsets**2).sum(0)).view(1, -1, 1, 1)
    motion = None
    for da, db in zip(reversed(descs_a), reversed(descs_b)):
        h, w = da.shape[-2:]
        if motion is None:
            motion = da.new_zeros((da.shape[0], 2, h, w))
            warped = db
        else:
            motion = _upsample_motion(motion, (h, w))
            warped = backward_warp(db, motion)
        cos = window_products(da, warped, radius)
        if aggregate:
            # cost aggregation: score each offset by its mean cosine over a neighbourhood, so a match must
            # hold for a whole region (one pixel of repetitive texture matches many offsets equally well)
            a_ = aggregate
            cos = F.avg_pool2d(F.pad(cos, (a_, a_, a_, a_), mode="replicate"), 2 * a_ + 1, stride=1)
        inside = window_inside(offsets, h, w, da.device, motion)
        logits = sharpness * cos + penalty.to(cos.dtype)
        logits = logits.masked_fill(~inside, float("-inf"))
        attn = logits.float().softmax(dim=1)
        step = torch.einsum("ok,bkhw->bohw", offsets.to(attn.dtype), attn).to(da.dtype)
        if min_gain > 0 or min_match > -1.0:
            # move only where a clearly better match than staying put exists (flat or aliased texture
            # matches everywhere about equally, and there a coarse guess would only do harm)
            centre = cos[:, cos.shape[1] // 2]
            best = cos.masked_fill(~inside, -2.0).amax(dim=1)
            step = step * ((best - centre > min_gain) & (best > min_match)).unsqueeze(1).to(step.dtype)
        motion = motion + step
    assert motion is not None
    return _upsample_motion(motion, size)


def _upsample_motion(motion: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """x2 upsampling of a motion field onto the next finer grid (cropped to ``size``), vectors doubled."""
    up = F.interpolate(motion, scale_factor=2.0, mode="bilinear", align_corners=False) * 2.0
    return up[..., : size[0], : size[1]]
