"""Attention of the flow-prior network: the inter-frame attention of its motion part
(:class:`~vidrestore.model.prior_net.PairCorrection`, dot products of one latent with another over a local
window), and the restoration path's self-attention within a latent and attention across views."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def window_products(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """sum over channels of a(p) * b(p + o) for every offset o of a (2r+1)^2 window: [B, (2r+1)^2, H, W].

    ``b`` is replicate-padded (an offset past the border reads the border pixel). Both are laid out
    channels-last, so that every offset's dot products (``torch.linalg.vecdot``) reduce over the contiguous
    last dimension instead of the strided channel dimension: the same sums, about half the time on CPUs.
    """
    h, w = a.shape[-2:]
    k = 2 * radius + 1
    a_last = a.permute(0, 2, 3, 1).contiguous()
    b_last = F.pad(b, (radius, radius, radius, radius), mode="replicate").permute(0, 2, 3, 1).contiguous()
    return torch.stack(
        [torch.linalg.vecdot(a_last, b_last[:, dy:dy + h, dx:dx + w]) for dy in range(k) for dx in range(k)], dim=1
    )


# -- the restoration path's attention (the seeds' ideas: factorized spatio-temporal attention, Suin &
# Rajagopalan; adaptive latent attention, ALANET) ------------------------------------------------------


def _shifted(x: torch.Tensor, radius: int) -> list[torch.Tensor]:
    """``x`` [B, C, H, W] read at every offset of a (2r+1)^2 window (zero outside the frame), row by row."""
    h, w = x.shape[-2:]
    k = 2 * radius + 1
    p = F.pad(x, (radius, radius, radius, radius))
    return [p[..., dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)]


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, radius: int) -> torch.Tensor:
    """Each position of ``q`` [B, C, H, W] attends to the (2r+1)^2 positions of ``k``/``v`` around it (a
    sliding window: neighbourhood attention). Offsets outside the frame are masked out, so the result at a
    pixel depends only on the frame within ``radius``: like a convolution, it is the same on a tile as on the
    whole frame wherever the tile's overlap covers the radius, and its cost is linear in the area."""
    scale = q.shape[1] ** -0.5
    ks = _shifted(k, radius)
    logits = torch.stack([(q * kk).sum(dim=1) for kk in ks], dim=1).float() * scale  # [B, K, H, W]
    ones = torch.ones_like(q[:, :1])
    inside = torch.stack([m[:, 0] for m in _shifted(ones, radius)], dim=1) > 0.5
    attn = torch.softmax(logits.masked_fill(~inside, float("-inf")), dim=1).to(v.dtype)
    out = torch.zeros_like(v)
    for i, vv in enumerate(_shifted(v, radius)):
        out = out + attn[:, i:i + 1] * vv
    return out


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention within a latent, over a sliding (2r+1)^2 window (the spatial half of the
    factorized attention; ALANET's self-attention within a frame's latent). Pre-norm, residual, and its
    output projection starts at zero: a new block is the identity."""

    def __init__(self, c: int, radius: int, head_dim: int = 16) -> None:
        super().__init__()
        self.radius = radius
        self.heads = max(1, c // head_dim)
        self.norm = nn.GroupNorm(1, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=1)
        n = self.heads
        heads = [t.reshape(b * n, c // n, h, w) for t in (q, k, v)]
        out = local_attention(*heads, self.radius).reshape(b, c, h, w)
        return x + self.proj(out)


class ViewAttention(nn.Module):
    """Attention across views, per position (the temporal half of the factorized attention; ALANET's
    cross-attention between the latents of the frames an output is made from). The query is the restoration
    path's own feature; keys and values are the views' latents (the encoder's 1/8-scale features of the
    key frame and its flow-aligned neighbours, or of the two frames warped to an in-between time), resized
    to this level. The softmax over the views picks, at each point, the view that helps most: real
    handheld video has a sharp neighbour for most blurred frames. Residual, output projection zero at start."""

    def __init__(self, c: int, c_view: int, dim: int = 32) -> None:
        super().__init__()
        self.dim = dim
        self.norm = nn.GroupNorm(1, c)
        self.query = nn.Conv2d(c, dim, 1)
        self.key = nn.Conv2d(c_view, dim, 1)
        self.value = nn.Conv2d(c_view, c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """x [B, C, h, w]; views [B, V, Cv, H8, W8] (resized to h x w here)."""
        b, n_v = views.shape[:2]
        flat = views.flatten(0, 1)
        if flat.shape[-2:] != x.shape[-2:]:
            flat = F.adaptive_avg_pool2d(flat, x.shape[-2:])
        flat = flat.to(x.dtype)
        q = self.query(self.norm(x))  # [B, d, h, w]
        k = self.key(flat).unflatten(0, (b, n_v))  # [B, V, d, h, w]
        v = self.value(flat).unflatten(0, (b, n_v))  # [B, V, C, h, w]
        logits = (q.unsqueeze(1) * k).sum(dim=2).float() * self.dim ** -0.5  # [B, V, h, w]
        attn = torch.softmax(logits, dim=1).to(x.dtype)
        return x + self.proj((attn.unsqueeze(2) * v).sum(dim=1))
