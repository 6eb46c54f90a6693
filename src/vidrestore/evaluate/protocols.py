"""Evaluation protocols: which source frames become inputs, which are ground truth, at which times.

All functions here are pure bookkeeping on frame indices (plus one averaging helper), so they can be
tested without a model.

A *source* is a sequence of S sharp frames at rate R, indexed 0..S-1.  With stride n and exposure m:

* ``joint`` (Adobe240-style): input j is the average of the m consecutive source frames centred on
  source frame c_j = h + j*n, where h = (m-1)//2 (m is odd, 1 <= m <= n).  The inputs play a blurry
  video at R/n.  The model runs in joint mode at K = n.  Ground truth: the key frame of input j is
  source c_j (time 0), and the intermediate frame k (1 <= k < n) between inputs j and j+1 is source
  c_j + k at time k/n.  Frames after the last input are not scored (there is no next input to
  interpolate towards).
* ``interp``: input j is source frame j*n itself (sharp).  Interp mode at K = n; ground truth as in
  ``joint`` with h = 0.  Key frames are trivially exact for most methods; "inter" is what matters.
* ``deblur``: the same blurry inputs as ``joint``; deblur mode (K = 1); the output for input j is
  scored against its centre frame c_j.

The output stream of a method has N*K frames: for each input j, its key frame (step 0) and then the
K-1 intermediate frames at times k/K.  ``Target.output`` indexes that stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vidrestore.errors import InputError, UsageError

PROTOCOLS = ("joint", "interp", "deblur")
MODES = ("joint", "interp", "deblur")


@dataclass(frozen=True)
class InputFrame:
    """Input j of a protocol: the source frames averaged into it and the one at its centre."""

    index: int
    centre: int
    sources: tuple[int, ...]


@dataclass(frozen=True)
class Target:
    """One scored output frame.

    ``output``: position in the method's output stream (input_index * factor + step);
    ``source``: index of the ground-truth source frame (-1 when the truth comes from elsewhere,
    e.g. a synthetic sample); ``time``: step / factor, the fraction of the way from input
    ``input_index`` to the next input.
    """

    output: int
    source: int
    input_index: int
    step: int
    time: float
    is_key: bool


@dataclass(frozen=True)
class Plan:
    protocol: str
    stride: int
    exposure: int
    factor: int
    mode: str
    inputs: tuple[InputFrame, ...]
    targets: tuple[Target, ...]

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.inputs) * self.factor

    @property
    def sources_used(self) -> int:
        """How many leading source frames the plan touches."""
        last = max(max(i.sources) for i in self.inputs)
        return max(last, max((t.source for t in self.targets), default=0)) + 1


def check_settings(protocol: str, stride: int, exposure: int) -> None:
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if stride < 1:
        raise UsageError(f"--stride {stride}: must be at least 1")
    if protocol in ("joint", "interp") and stride < 2:
        raise UsageError(f"--stride {stride}: protocol {protocol} needs a stride of at least 2")
    if protocol in ("joint", "deblur"):
        if exposure < 1 or exposure % 2 == 0:
            raise UsageError(f"--exposure {exposure}: must be an odd number of frames (centred on a source frame)")
        if exposure > stride and stride > 1:
            raise UsageError(
                f"--exposure {exposure}: longer than the frame interval of the inputs (--stride {stride})"
            )


def engine_settings(protocol: str, stride: int) -> tuple[int, str]:
    """(factor K, engine mode) a protocol runs the model at."""
    if protocol == "deblur":
        return 1, "deblur"
    return stride, protocol


def exposure_window(centre: int, exposure: int) -> tuple[int, ...]:
    """The ``exposure`` consecutive source indices centred on ``centre`` (``exposure`` odd)."""
    h = (exposure - 1) // 2
    return tuple(range(centre - h, centre - h + exposure))


def min_source_frames(protocol: str, stride: int, exposure: int) -> int:
    """The shortest source a protocol can use (two inputs for joint/interp, one for deblur)."""
    if protocol == "interp":
        return stride + 1
    if protocol == "joint":
        return exposure + stride
    return exposure


def make_plan(protocol: str, num_source: int, stride: int = 8, exposure: int = 7) -> Plan:
    """The inputs and scored targets of ``protocol`` on a source of ``num_source`` sharp frames."""
    check_settings(protocol, stride, exposure)
    need = min_source_frames(protocol, stride, exposure)
    if num_source < need:
        raise InputError(
            f"{num_source} source frame(s) are too few for --protocol {protocol} with --stride {stride}"
            + (f" and --exposure {exposure}" if protocol != "interp" else "")
            + f" (needs at least {need})"
        )
    factor, mode = engine_settings(protocol, stride)
    if protocol == "interp":
        h, m = 0, 1
    else:
        h, m = (exposure - 1) // 2, exposure
    # centre c_j = h + j*stride, its window must end inside the source: c_j + (m-1-h) <= S-1
    count = (num_source - m) // stride + 1
    inputs = tuple(
        InputFrame(index=j, centre=h + j * stride, sources=exposure_window(h + j * stride, m)) for j in range(count)
    )
    targets: list[Target] = []
    for inp in inputs:
        j = inp.index
        targets.append(Target(output=j * factor, source=inp.centre, input_index=j, step=0, time=0.0, is_key=True))
        if protocol == "deblur" or j == count - 1:
            continue
        for k in range(1, factor):
            targets.append(
                Target(
                    output=j * factor + k,
                    source=inp.centre + k,
                    input_index=j,
                    step=k,
                    time=k / factor,
                    is_key=False,
                )
            )
    return Plan(
        protocol=protocol,
        stride=stride,
        exposure=m,
        factor=factor,
        mode=mode,
        inputs=inputs,
        targets=tuple(targets),
    )


def average_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of uint8 RGB frames, computed in float and rounded to the nearest uint8."""
    if not frames:
        raise UsageError("nothing to average")
    acc = np.zeros(frames[0].shape, dtype=np.float64)
    for f in frames:
        acc += f
    acc /= len(frames)
    return np.clip(np.rint(acc), 0, 255).astype(np.uint8)


def make_inputs(plan: Plan, source: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The input frames of ``plan`` built from the source frames (blurred by averaging where m > 1)."""
    out = []
    for inp in plan.inputs:
        if len(inp.sources) == 1:
            out.append(np.ascontiguousarray(source[inp.sources[0]]))
        else:
            out.append(average_frames([source[i] for i in inp.sources]))
    return out


def window_targets(factor: int, key_input: int, with_inter: bool) -> tuple[Target, ...]:
    """Targets of a single window whose truth is given separately (synthetic samples): the key frame
    of input ``key_input`` and, if ``with_inter``, the factor-1 frames between it and the next input."""
    targets = [
        Target(output=key_input * factor, source=-1, input_index=key_input, step=0, time=0.0, is_key=True)
    ]
    if with_inter:
        targets += [
            Target(
                output=key_input * factor + k,
                source=-1,
                input_index=key_input,
                step=k,
                time=k / factor,
                is_key=False,
            )
            for k in range(1, factor)
        ]
    return tuple(targets)


__all__ = [
    "MODES",
    "PROTOCOLS",
    "InputFrame",
    "Plan",
    "Target",
    "average_frames",
    "check_settings",
    "engine_settings",
    "exposure_window",
    "make_inputs",
    "make_plan",
    "min_source_frames",
    "window_targets",
]
