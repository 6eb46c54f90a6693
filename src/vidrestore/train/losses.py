"""Reconstruction losses of the flow-prior training (:mod:`vidrestore.train.prior_loop`): Charbonnier, a
multi-scale Laplacian-pyramid L1 term, a Fourier term, and a Charbonnier term on where the blur was. No pretrained
networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GAUSS_1D = (1.0, 4.0, 6.0, 4.0, 1.0)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """[...,C,H,W] -> [N,C,H,W] in fp32."""
    return x.reshape(-1, *x.shape[-3:]).float()


def _charbonnier_map(pred: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """sqrt(d^2 + eps^2) - eps per element, in fp32."""
    d = pred.float() - target.float()
    return torch.sqrt(d * d + eps * eps) - eps


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt(d^2 + eps^2)) - eps: zero when pred == target, ~L1 for large errors."""
    return _charbonnier_map(pred, target, eps).mean()


def _blur(x: torch.Tensor) -> torch.Tensor:
    k1 = torch.tensor(_GAUSS_1D, device=x.device, dtype=x.dtype)
    k2 = torch.outer(k1, k1)
    k2 = (k2 / k2.sum()).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k2, groups=x.shape[1])


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels (finest first) and the low-pass residual last: levels+1 tensors at most."""
    out = []
    cur = x
    for _ in range(levels):
        if min(cur.shape[-2:]) < 8:
            break
        low = _blur(cur)
        down = low[..., ::2, ::2]
        up = F.interpolate(down, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        out.append(cur - up)
        cur = down
    out.append(cur)
    return out


def laplacian_loss(pred: torch.Tensor, target: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """L1 between Laplacian pyramids; coarser levels weighted up (2^l) to balance their smaller size."""
    pp = laplacian_pyramid(_flat(pred), levels)
    tp = laplacian_pyramid(_flat(target), levels)
    total = pred.new_zeros((), dtype=torch.float32)
    for level, (a, b) in enumerate(zip(pp, tp)):
        total = total + (2.0 ** level) * (a - b).abs().mean()
    return total / len(pp)


def fft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the 2-D Fourier spectra (real and imaginary parts, orthonormal): blur removes high
    frequencies, which a pixel loss weighs little since they carry little energy."""
    d = torch.fft.rfft2(_flat(pred) - _flat(target), norm="ortho")
    return torch.view_as_real(d).abs().mean()


def blur_mask(blurred: torch.Tensor, sharp: torch.Tensor, scale: float = 0.1) -> torch.Tensor:
    """Where the blur changed a frame: |blurred - sharp| (mean over channels) / ``scale``, at most 1, [N,1,H,W].
    A scene's moving parts are a small share of its pixels, so a pixel loss spends little of its gradient on
    the blur of moving objects; camera shake changes every edge of a frame."""
    return ((_flat(blurred) - _flat(sharp)).abs().mean(dim=1, keepdim=True) / scale).clamp(max=1.0)


def masked_charbonnier(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier weighted by ``mask`` [N,1,H,W] in [0, 1], over all pixels (not normalised by the mask:
    a window with more blur weighs more)."""
    return (_charbonnier_map(_flat(pred), _flat(target), eps) * mask).mean()
