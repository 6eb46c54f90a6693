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
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


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

    def pair(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        self_x0: torch.Tensor | None = None,
        self_x1: torch.Tensor | None = None,
    ) -> torch.Tensor:
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

    def _inside(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """[1, K2, H, W] bool: which window offsets of each pixel fall inside the frame."""
        ys = torch.arange(h, device=device).view(1, h, 1)
        xs = torch.arange(w, device=device).view(1, 1, w)
        ox = self.offsets[0].to(device=device, dtype=torch.long).view(-1, 1, 1)
        oy = self.offsets[1].to(device=device, dtype=torch.long).view(-1, 1, 1)
        inside = (xs + ox >= 0) & (xs + ox < w) & (ys + oy >= 0) & (ys + oy < h)
        return inside.unsqueeze(0)

    def _shifted(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The K2 window neighbours of every pixel as views of one replicate-padded tensor.

        Element k of the list is x shifted by offset k ([B, C, H, W], no copy), in the order of
        ``offsets``. Nothing of size C x K2 x H x W is materialised (unlike ``F.unfold``), which
        makes this several times faster on CPUs and lighter on memory everywhere.
        """
        h, w = x.shape[-2:]
        r = self.window // 2
        xp = F.pad(x, (r, r, r, r), mode="replicate")
        return [xp[..., dy:dy + h, dx:dx + w] for dy in range(self.window) for dx in range(self.window)]

    def forward(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        desc_a: torch.Tensor | None = None,
        desc_b: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """a, b: latents [B, C, H, W]; desc_a, desc_b: unit-norm patch descriptors [B, D, H, W] or None."""
        n, c, h, w = a.shape
        na, nb = self.norm(a), self.norm(b)
        # one dot product per offset covers both logit terms:
        # <q, k> / sqrt(dim) + exp(log_match) * <desc_a, desc_b>  (cosine similarity)
        query = self.q(na) * (self.dim**-0.5)
        key = self.k(nb)
        if desc_a is not None and desc_b is not None:
            query = torch.cat((query, self.log_match.exp().to(desc_a.dtype) * desc_a), dim=1)
            key = torch.cat((key, desc_b.to(key.dtype)), dim=1)
        logits = torch.stack([(query * k).sum(dim=1) for k in self._shifted(key)], dim=1)  # [B, K2, H, W]
        logits = logits + self.prior.to(logits.dtype).view(1, -1, 1, 1)
        logits = logits.masked_fill(~self._inside(h, w, a.device), float("-inf"))  # no matches off the frame
        attn = logits.float().softmax(dim=1)
        attn_v = attn.to(b.dtype)
        agg = torch.zeros_like(a)
        for k, v in enumerate(self._shifted(self.v(nb))):
            agg.addcmul_(attn_v[:, k:k + 1], v)
        motion = torch.einsum("ok,bkhw->bohw", self.offsets.to(attn.dtype), attn)
        return a + self.out(agg), motion.to(a.dtype)


def patch_descriptors(frame: torch.Tensor, scale: int = 8) -> torch.Tensor:
    """Fixed matching descriptors on the 1/``scale`` grid: [B, 3*4*9, H/scale, W/scale].

    The frame is averaged to 1/(scale/2), each 2x2 block is stacked into one vector, and the
    vectors of a 3x3 neighbourhood are concatenated; each descriptor is mean-subtracted and
    normalised to unit length, so a dot product is a normalised cross-correlation.
    """
    small = F.avg_pool2d(frame, scale // 2)
    d = F.pixel_unshuffle(small, 2)
    b, c, h, w = d.shape
    d = F.unfold(F.pad(d, (1, 1, 1, 1), mode="replicate"), 3).reshape(b, c * 9, h, w)
    d = d - d.mean(dim=1, keepdim=True)
    return d / (d.norm(dim=1, keepdim=True) + 1e-2)
