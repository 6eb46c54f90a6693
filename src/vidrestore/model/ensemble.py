"""Test-time ensemble over mirrored copies of a window (``--ensemble``).

The network is not equivariant to mirroring: its learned filters see a mirrored window as different
input, and their errors differ. Running the window as it is and mirrored (left-right, then also
up-down and both), mirroring each output back and averaging, cancels part of those errors at 2x or 4x
the time. The same idea as test-time augmentation in image restoration and Practical-RIFE's
``--ensemble``.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn as nn

from vidrestore.model.layers import window_features
from vidrestore.model.prior_net import PriorFlows, join_parts

# the mirrorings, in the order their passes are added: none, left-right, up-down, both
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))
PASSES = (1, 2, 4)


def _flip(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return x.flip(dims) if dims else x


def _flip_flow(flow: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """A flow field [B, 2, H, W] (x then y) of the mirrored frames: mirrored, and the mirrored axis's
    component negated."""
    if not dims:
        return flow
    sign = torch.tensor([-1.0 if -1 in dims else 1.0, -1.0 if -2 in dims else 1.0], device=flow.device,
                        dtype=flow.dtype).view(1, 2, 1, 1)
    return flow.flip(dims) * sign


class FlipEnsemble(nn.Module):
    """Wraps a network (:class:`~vidrestore.model.prior_net.PriorNet`, or any model with its
    ``encode``/``restore``) with the same interface.

    ``encode`` returns the features of every mirrored copy of the frame, one after the other, in one
    flat tuple (so callers that cache and batch features level by level need not know); ``restore``
    splits them again, runs the network on each mirrored window and averages the mirrored-back outputs.
    Mirroring a frame and its features together is exact: the features of a mirrored frame are
    computed from the mirrored frame, not mirrored afterwards.
    """

    def __init__(self, model: nn.Module, passes: int) -> None:
        super().__init__()
        if passes not in PASSES:
            raise ValueError(f"ensemble passes must be one of {PASSES}, got {passes}")
        self.model = model
        self.flips = FLIPS[:passes]

    @property
    def config(self):
        return self.model.config

    def encode(self, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out: list[torch.Tensor] = []
        for dims in self.flips:
            out.extend(self.model.encode(_flip(frame, dims)))
        return tuple(out)

    def restore(self, frames: Sequence[torch.Tensor], feats: Sequence[tuple[torch.Tensor, ...]], times: torch.Tensor,
                prior: PriorFlows, with_key: bool = True, sharp: bool = False, time_chunk: int = 0):
        """As the wrapped network's ``restore``: (key or None, inter), each the mean over the passes; the prior
        flows are mirrored with the frames."""
        key, parts = self.restore_parts(frames, feats, times, prior, with_key, sharp, time_chunk)
        return key, join_parts(parts)

    def restore_parts(self, frames: Sequence[torch.Tensor], feats: Sequence[tuple[torch.Tensor, ...]],
                      times: torch.Tensor, prior: PriorFlows, with_key: bool = True, sharp: bool = False,
                      time_chunk: int = 0) -> tuple[torch.Tensor | None, Iterator[torch.Tensor]]:
        """As the wrapped network's ``restore_parts``: the key (mean over the passes) and the in-between frames
        part by part, each part the mean over the passes (which advance together)."""
        n = len(self.flips)
        levels = len(feats[0]) // n
        key_sum = None
        streams = []
        for i, dims in enumerate(self.flips):
            fr = [_flip(f, dims) for f in frames]
            fe = [tuple(f[i * levels:(i + 1) * levels]) for f in feats]
            flipped = PriorFlows(*(_flip_flow(f, dims) for f in prior))
            key, parts = self.model.restore_parts(fr, fe, times, prior=flipped, with_key=with_key, sharp=sharp,
                                                  time_chunk=time_chunk)
            streams.append(parts)
            if key is not None:
                key = _flip(key, dims)
                key_sum = key if key_sum is None else key_sum + key

        def averaged() -> Iterator[torch.Tensor]:
            for parts in zip(*streams):
                total = _flip(parts[0], self.flips[0])
                for dims, part in zip(self.flips[1:], parts[1:]):
                    total = total + _flip(part, dims)
                yield total / n

        return (None if key_sum is None else key_sum / n), averaged()

    def forward(self, frames: torch.Tensor, times: torch.Tensor, prior: PriorFlows, sharp: bool = False):
        """frames [B, 4, 3, H, W]; times [T] or [B, T]; ``prior`` as in ``restore`` -> (key, inter), as the
        wrapped network's forward."""
        return self.restore([frames[:, i] for i in range(4)], window_features(self.encode, frames), times,
                            with_key=True, sharp=sharp, prior=prior)
