"""Inter-frame attention of the flow-prior network (:class:`~vidrestore.model.prior_net.PairCorrection`):
dot products of one latent with another over a local window."""

from __future__ import annotations

import torch
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
