"""Reconstruction losses: Charbonnier plus a multi-scale Laplacian-pyramid L1 term, or a per-frame PSNR loss
(the metric itself, so every frame counts alike, nearly-sharp ones included). No pretrained networks."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from vidrestore.config import PIXEL_LOSSES
from vidrestore.errors import UsageError

_GAUSS_1D = (1.0, 4.0, 6.0, 4.0, 1.0)


@dataclass(frozen=True)
class LossConfig:
    """The loss of a training run: image terms, their weights, the flow term, and the weights that differ on
    ``--clips`` batches (see :meth:`for_source`). Construction checks the weights with the CLI's flag names."""

    eps: float = 1e-3  # Charbonnier epsilon
    laplacian_weight: float = 0.5
    levels: int = 4  # pyramid levels (fewer when the image is small)
    key_weight: float = 1.0
    inter_weight: float = 1.0
    flow_weight: float = 0.0  # weight of the flow term (per full-resolution pixel of error) where exact flows exist
    pixel: str = "charbonnier"  # image term: "charbonnier" (+ Laplacian) or "psnr" (per-frame log MSE, alone)
    # key-frame loss weight in clip batches (None: key_weight). A clip sample's key input is its own target,
    # so that term only teaches the key branch to leave frames alone.
    clip_key_weight: float | None = None
    # weight of the flow term in clip batches, against DIS teacher flows from the true in-between frame
    # (vidrestore.train.teacher); 0: clip batches carry no flows
    clip_flow_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.pixel not in PIXEL_LOSSES:
            raise ValueError(f"pixel loss {self.pixel!r}: expected one of {', '.join(PIXEL_LOSSES)}")
        for name in ("key_weight", "inter_weight", "flow_weight", "clip_key_weight", "clip_flow_weight"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise UsageError(f"--{name.replace('_', '-')} {value}: must be >= 0")
        if self.key_weight == 0 and self.inter_weight == 0 and self.flow_weight == 0 and self.clip_flow_weight == 0:
            raise UsageError("--key-weight, --inter-weight, --flow-weight and --clip-flow-weight are all 0: "
                             "nothing to train")

    def for_source(self, source: str) -> "LossConfig":
        """The loss of a batch from ``source`` (synthetic, clips or videos): clip batches take the clip
        weights for the key frame and the flows."""
        if source != "clips":
            return self
        key = self.key_weight if self.clip_key_weight is None else self.clip_key_weight
        return replace(self, key_weight=key, flow_weight=self.clip_flow_weight)

    @property
    def wants_inter(self) -> bool:
        """Whether any term looks at in-between frames (or at the flows that make them)."""
        return self.inter_weight > 0 or self.flow_weight > 0 or self.clip_flow_weight > 0


def _flat(x: torch.Tensor) -> torch.Tensor:
    """[...,C,H,W] -> [N,C,H,W] in fp32."""
    return x.reshape(-1, *x.shape[-3:]).float()


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt(d^2 + eps^2)) - eps: zero when pred == target, ~L1 for large errors."""
    d = pred.float() - target.float()
    return (torch.sqrt(d * d + eps * eps) - eps).mean()


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


def psnr_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the mean per-frame PSNR (dB) of [...,C,H,W] images in [0,1], unclamped: 10 log10(MSE + 1e-8) averaged
    over frames. A frame's gradient scales with 1/MSE, so frames that are nearly right weigh as much as the
    rest, as they do in a mean of PSNRs (Charbonnier's weight follows the error's size instead)."""
    mse = ((pred.float() - target.float()) ** 2).mean(dim=(-3, -2, -1))
    return (10.0 / math.log(10.0)) * torch.log(mse + 1e-8).mean()


def image_loss(pred: torch.Tensor, target: torch.Tensor, cfg: LossConfig = LossConfig()) -> torch.Tensor:
    if cfg.pixel == "psnr":
        return psnr_loss(pred, target)
    loss = charbonnier(pred, target, cfg.eps)
    if cfg.laplacian_weight > 0:
        loss = loss + cfg.laplacian_weight * laplacian_loss(pred, target, cfg.levels)
    return loss


def flow_loss(stage_flows: list[torch.Tensor], target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier error of each flow stage's output [B,T,2,2,h,w] (pixels of its grid) against the
    full-resolution target flows [B,T,2,2,H,W], in full-resolution pixels, averaged over the stages. The
    target is brought to each grid by area averaging, its vectors scaled with the grid. NaN in the target
    marks an unknown flow (teacher flows that failed their check): a grid cell that covers one is skipped."""
    total = target.new_zeros((), dtype=torch.float32)
    full = target.shape[-2:]
    flat = target.float().flatten(0, 2)  # [B*T*2, 2, H, W]
    for pred in stage_flows:
        size = pred.shape[-2:]
        tgt = F.adaptive_avg_pool2d(flat, size) if size != full else flat
        pred_full = pred.flatten(0, 2).float() * (full[-1] / size[-1])
        known = torch.isfinite(tgt).all(dim=1, keepdim=True).expand_as(tgt)
        if bool(known.all()):
            total = total + charbonnier(pred_full, tgt, eps)
        elif bool(known.any()):
            total = total + charbonnier(pred_full[known], tgt[known], eps)
    return total / max(1, len(stage_flows))


def restoration_loss(
    key: torch.Tensor | None,
    inter: torch.Tensor,
    key_target: torch.Tensor,
    inter_target: torch.Tensor,
    cfg: LossConfig = LossConfig(),
    flows: list[torch.Tensor] | None = None,
    flow_target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted loss on the key frame [B,3,H,W] and the intermediate frames [B,T,3,H,W], plus the flow
    term when the model's stage flows and exact flows are both given and ``cfg.flow_weight`` > 0."""
    parts: dict[str, float] = {}
    total = inter.new_zeros((), dtype=torch.float32)
    if key is not None and cfg.key_weight > 0:
        lk = image_loss(key, key_target, cfg)
        parts["key"] = float(lk.detach())
        total = total + cfg.key_weight * lk
    if inter.numel() and cfg.inter_weight > 0:
        li = image_loss(inter, inter_target, cfg)
        parts["inter"] = float(li.detach())
        total = total + cfg.inter_weight * li
    if flows and flow_target is not None and cfg.flow_weight > 0:
        lf = flow_loss(flows, flow_target)
        parts["flow"] = float(lf.detach())
        total = total + cfg.flow_weight * lf
    return total, parts


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of [...,C,H,W] images in [0,1] (pred is clamped): shape [...]."""
    mse = ((pred.float().clamp(0, 1) - target.float()) ** 2).mean(dim=(-3, -2, -1))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
