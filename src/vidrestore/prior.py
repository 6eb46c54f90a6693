"""The flow prior of :class:`~vidrestore.model.prior_net.PriorNet`: dense classical optical flow
(OpenCV DIS, the same flow as the ``dis-flow`` baseline) between consecutive frames, both ways,
computed on the host in worker threads (OpenCV releases the GIL, so it overlaps with the network).

Flows follow :mod:`vidrestore.flow`: HxWx2 float32, x then y, backward, ``a(p) ~ b(p + flow(p))``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch

from vidrestore.flow import dis_flow
from vidrestore.model.prior_net import PriorFlows


def pair_flows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flow a -> b, flow b -> a) of two HxWx3 uint8 RGB frames."""
    return dis_flow(a, b), dis_flow(b, a)


def _tensor(flows: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()


def window_prior(frames: Sequence[np.ndarray]) -> PriorFlows:
    """The prior of one window F(i-1), F(i), F(i+1), F(i+2) (HxWx3 uint8), as [1, 2, H, W] tensors."""
    f01, f10 = pair_flows(frames[1], frames[2])
    f0p = dis_flow(frames[1], frames[0])
    return PriorFlows(_tensor([f01]), _tensor([f10]), _tensor([f0p]))


def batch_prior(windows: Sequence[Sequence[np.ndarray]], pool: ThreadPoolExecutor | None = None) -> PriorFlows:
    """The priors of several windows, [B, 2, H, W] each; computed in ``pool``'s threads when given."""
    jobs: list[tuple[np.ndarray, np.ndarray]] = []
    for w in windows:
        jobs += [(w[1], w[2]), (w[2], w[1]), (w[1], w[0])]
    if pool is None:
        flows = [dis_flow(a, b) for a, b in jobs]
    else:
        futures: list[Future] = [pool.submit(dis_flow, a, b) for a, b in jobs]
        flows = [f.result() for f in futures]
    return PriorFlows(_tensor(flows[0::3]), _tensor(flows[1::3]), _tensor(flows[2::3]))
