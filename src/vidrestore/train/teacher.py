"""Teacher flows for real-footage training samples: classical optical flow from the true in-between frame.

Sharp ordinary-rate footage (``--clips``) has no exact flows, but an interpolation sample does hold the
real frame at every target time. Classical DIS flow (OpenCV, :mod:`vidrestore.flow`) from that frame to
F(i) and to F(i+1) estimates exactly what the network's flow stages predict, the backward flows from time
t to both inputs, and over half the motion of the whole interval, where DIS is at its most reliable.
RIFE's privileged teacher uses the true frame the same way; here the teacher is not a network, so nothing
pretrained is involved.

Where warping the input by the teacher's flow does not reproduce the true frame (occlusions, DIS
failures) the flow is marked unknown (NaN) and the flow loss skips it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidrestore.flow import dis_flow
from vidrestore.frames import quantize
from vidrestore.model.warp import backward_warp
from vidrestore.synth.scenes import Sample

# a teacher flow is kept where the warped input matches the true frame to this mean absolute error
# (per pixel, mean over the colour channels, after a 5x5 box filter; images in [0, 1])
PHOTOMETRIC_TOLERANCE = 0.04


def _checked(flow: np.ndarray, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[2, H, W] float tensor of ``flow`` (target(x) ~ source(x + flow(x))), NaN where that does not hold."""
    fl = torch.from_numpy(flow).permute(2, 0, 1).to(source.device, torch.float32)
    warped = backward_warp(source.float()[None], fl[None])[0]
    err = (warped - target.float()).abs().mean(dim=0, keepdim=True)
    err = F.avg_pool2d(F.pad(err[None], (2, 2, 2, 2), mode="replicate"), 5, stride=1)[0]
    return fl.masked_fill(err > PHOTOMETRIC_TOLERANCE, float("nan"))


def teacher_flows(sample: Sample) -> torch.Tensor:
    """[B, T, 2, 2, H, W]: per target time, DIS flow from the true frame to F(i) (side 0) and to F(i+1)
    (side 1), in pixels, x then y, with NaN where the photometric check fails. The layout of
    ``Sample.flows``, so the flow loss takes it as is."""
    b, n_t = sample.inter.shape[:2]
    out = torch.empty((b, n_t, 2, 2, *sample.inter.shape[-2:]), dtype=torch.float32, device=sample.inter.device)
    for i in range(b):
        ends = (sample.inputs[i, 1], sample.inputs[i, 2])
        ends_u8 = quantize(torch.stack(ends))  # the uint8 frames DIS takes, as video would hold them
        mids_u8 = quantize(sample.inter[i])
        for j in range(n_t):
            for side in (0, 1):
                out[i, j, side] = _checked(dis_flow(mids_u8[j], ends_u8[side]), ends[side], sample.inter[i, j])
    return out


def with_teacher_flows(sample: Sample) -> Sample:
    return Sample(sample.inputs, sample.key, sample.inter, sample.times, teacher_flows(sample))
