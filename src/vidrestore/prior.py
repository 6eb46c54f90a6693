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

from vidrestore import threads
from vidrestore.flow import dis_flow
from vidrestore.model.prior_net import PriorFlows


def _tensor(flows: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()


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


def window_prior(frames: Sequence[np.ndarray]) -> PriorFlows:
    """The prior of one window F(i-1), F(i), F(i+1), F(i+2) (HxWx3 uint8), as [1, 2, H, W] tensors."""
    return batch_prior([frames])


def to_u8(arr: np.ndarray) -> np.ndarray:
    """An 8-bit view of an RGB frame for DIS (16-bit frames: their high byte)."""
    return arr if arr.dtype == np.uint8 else (arr >> 8).astype(np.uint8)


class PairFlows:
    """The flows between consecutive input frames, both ways, started in worker threads as the frames
    arrive (the engine reads ahead of the windows it runs, so they overlap with the network), kept until
    evicted. No flow is computed across a scene cut: a window there replicates its frames, whose flow is
    zero."""

    def __init__(self, workers: int = 2) -> None:
        # at a lower priority than the network's thread: they work ahead of it (threads.background_thread)
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vidrestore-prior",
                                       initializer=threads.background_thread)
        self._jobs: dict[tuple[int, int], Future] = {}
        self._last: tuple[int, np.ndarray] | None = None

    def add(self, index: int, frame: np.ndarray, cut_before: bool) -> None:
        """Frame ``index`` arrived (after frame ``index - 1``, unless the stream restarted)."""
        u8 = to_u8(frame)
        last = self._last
        if last is not None and last[0] == index - 1 and not cut_before:
            prev = last[1]
            self._jobs[(index - 1, index)] = self.pool.submit(dis_flow, prev, u8)
            self._jobs[(index, index - 1)] = self.pool.submit(dis_flow, u8, prev)
        self._last = (index, u8)

    def get(self, a: int, b: int, shape: tuple[int, int]) -> np.ndarray:
        """The flow from frame ``a`` to frame ``b`` (HxWx2); zero when a == b."""
        if a == b:
            return np.zeros((*shape, 2), np.float32)
        job = self._jobs.get((a, b))
        if job is None:
            raise KeyError(f"no flow from frame {a} to {b} (not consecutive, or across a scene cut)")
        return job.result()

    def evict(self, below: int) -> None:
        for key in [k for k in self._jobs if min(k) < below]:
            del self._jobs[key]

    def close(self) -> None:
        for job in self._jobs.values():
            job.cancel()
        self._jobs.clear()
        self._last = None
        self.pool.shutdown(wait=True)
