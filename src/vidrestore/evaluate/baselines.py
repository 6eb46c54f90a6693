"""Classical baselines, run on exactly the inputs the model sees.

Every baseline maps N input frames (HxWx3 uint8 RGB) and a factor K to the same output stream as
the engine: N*K frames, for each input j its key frame and then the K-1 frames at times k/K towards
input j+1.  The key frames of a baseline are the inputs themselves (baselines do not deblur), and
after the last input, where there is nothing to interpolate towards, the last input is repeated.

* ``repeat``: the input nearest in time (t < 1/2 -> input j, t >= 1/2 -> input j+1).
* ``blend``: (1 - t) * input j + t * input j+1.
* ``dis-flow``: OpenCV DIS optical flow (preset medium) on grey levels, both ways between the two
  inputs; each input is backward-warped to time t with its flow scaled by t (from input j) or
  1 - t (from input j+1), and the two warps are blended with weights 1 - t and t
  (:func:`vidrestore.flow.dis_interpolate`).
* ``minterpolate``: ffmpeg's motion-compensated interpolation (``minterpolate=fps=K*r:mi_mode=mci``)
  through PyAV's filter graph, on yuv444p (RGB -> YUV -> RGB costs about 1-2 levels); each output
  frame is placed by its timestamp, so output k between inputs j and j+1 is the filter's frame at
  (j + k/K) / r.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from vidrestore.errors import ProcessingError, UsageError
from vidrestore.flow import dis_interpolate, round_u8

BASELINES = ("repeat", "blend", "dis-flow", "minterpolate")

# the input rate given to minterpolate; only the ratio of rates matters
_MI_RATE = 30


def _check_inputs(inputs: Sequence[np.ndarray], factor: int) -> None:
    if factor < 1:
        raise UsageError(f"factor {factor}: must be at least 1")
    if len(inputs) == 0:
        raise UsageError("no input frames")
    shape = inputs[0].shape
    for f in inputs:
        if f.shape != shape or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise UsageError("baseline inputs must be HxWx3 uint8 frames of one size")


Interpolator = Callable[[np.ndarray, np.ndarray, Sequence[float]], list[np.ndarray]]


def _pairwise(inputs: Sequence[np.ndarray], factor: int, between: Interpolator) -> Iterator[np.ndarray]:
    _check_inputs(inputs, factor)
    times = [k / factor for k in range(1, factor)]
    n = len(inputs)
    for j in range(n):
        yield inputs[j]
        if not times:
            continue
        if j + 1 < n:
            yield from between(inputs[j], inputs[j + 1], times)
        else:
            for _ in times:
                yield inputs[j]


def _repeat_between(a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
    return [a if t < 0.5 else b for t in times]


def _blend_between(a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    return [round_u8((1.0 - t) * fa + t * fb) for t in times]


def minterpolate_graph(width: int, height: int, factor: int, rate: int = _MI_RATE):
    """A configured PyAV filter graph: rgb24 frames at ``rate`` in, minterpolate (mci) at factor*rate out."""
    import av.filter

    graph = av.filter.Graph()
    src = graph.add_buffer(width=width, height=height, format="rgb24", time_base=Fraction(1, rate))
    to_yuv = graph.add("format", "yuv444p")
    mi = graph.add("minterpolate", f"fps={factor * rate}:mi_mode=mci")
    to_rgb = graph.add("format", "rgb24")
    sink = graph.add("buffersink")
    src.link_to(to_yuv)
    to_yuv.link_to(mi)
    mi.link_to(to_rgb)
    to_rgb.link_to(sink)
    graph.configure()
    return graph


def minterpolate_raw(inputs: Sequence[np.ndarray], factor: int, rate: int = _MI_RATE) -> dict[int, np.ndarray]:
    """Every frame minterpolate outputs, keyed by its position j*factor + k on the output time grid
    (the inputs are followed by one copy of the last input, which lets the filter emit the frames
    before the last input)."""
    return dict(_minterpolate_frames(inputs, factor, rate))


def _minterpolate_frames(inputs: Sequence[np.ndarray], factor: int, rate: int) -> Iterator[tuple[int, np.ndarray]]:
    import av

    _check_inputs(inputs, factor)
    h, w = inputs[0].shape[:2]
    graph = minterpolate_graph(w, h, factor, rate)
    tb = Fraction(1, rate)

    def drain() -> Iterator[tuple[int, np.ndarray]]:
        while True:
            try:
                frame = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            pos = frame.time * rate * factor
            idx = int(round(pos))
            if abs(pos - idx) > 1e-3:
                raise ProcessingError(f"minterpolate produced a frame off the output grid (at {frame.time:.6f}s)")
            yield idx, frame.to_ndarray(format="rgb24")

    # minterpolate only emits the frames between its 2nd and 3rd buffered inputs, so the interval
    # before the last input would never come out: one extra copy of the last input flushes it.
    for j, arr in enumerate([*inputs, inputs[-1]]):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        vf.pts = j
        vf.time_base = tb
        graph.push(vf)
        yield from drain()
    graph.push(None)
    yield from drain()


def _minterpolate(inputs: Sequence[np.ndarray], factor: int) -> Iterator[np.ndarray]:
    _check_inputs(inputs, factor)
    n = len(inputs)
    if factor == 1 or n == 1:
        yield from _pairwise(inputs, factor, _repeat_between)
        return
    pending: dict[int, np.ndarray] = {}
    next_out = 0
    last_inter = (n - 1) * factor  # outputs before this index between two inputs come from the filter

    def ready() -> Iterator[np.ndarray]:
        nonlocal next_out
        while next_out < n * factor:
            j, k = divmod(next_out, factor)
            if k == 0:
                frame = inputs[j]
            elif next_out >= last_inter:
                frame = inputs[n - 1]
            elif next_out in pending:
                frame = pending.pop(next_out)
            else:
                return
            next_out += 1
            yield frame

    for idx, arr in _minterpolate_frames(inputs, factor, _MI_RATE):
        if idx % factor != 0 and idx < last_inter and idx >= next_out:
            pending[idx] = arr
        yield from ready()
    yield from ready()
    if next_out < n * factor:
        raise ProcessingError(
            f"minterpolate gave no frame for output {next_out} (input {next_out // factor}, step {next_out % factor})"
        )


def run_baseline(name: str, inputs: Sequence[np.ndarray], factor: int) -> Iterator[np.ndarray]:
    """Stream the N*factor output frames of baseline ``name`` on ``inputs``."""
    if name == "repeat":
        return _pairwise(inputs, factor, _repeat_between)
    if name == "blend":
        return _pairwise(inputs, factor, _blend_between)
    if name == "dis-flow":
        return _pairwise(inputs, factor, dis_interpolate)
    if name == "minterpolate":
        return _minterpolate(inputs, factor)
    raise UsageError(f"unknown baseline {name!r}: expected one of {', '.join(BASELINES)}")


__all__ = ["BASELINES", "minterpolate_graph", "minterpolate_raw", "run_baseline"]


def minterpolate_file(src: Path, dst: Path, factor: int, codec: str = "libx264") -> dict[str, float]:
    """Decode ``src``, run ``minterpolate=fps=factor*rate:mi_mode=mci`` and encode to ``dst``.

    Like ``enhance``, it writes N*factor frames: the filter lags its input, so copies of the last
    frame are pushed at the end to flush the final interval (which then holds that frame, as
    ``enhance`` does at a video's end)."""
    import av

    t0 = time.perf_counter()
    out_frames = 0
    limit: int | None = None
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        rate = Fraction(vin.average_rate or 30)
        graph_rate = max(1, round(rate))  # the filter's own clock: only the ratio of its rates matters
        tb = Fraction(1, graph_rate)
        graph = None
        stream = out.add_stream(codec, rate=rate * factor)
        out_tb = 1 / (rate * factor)
        stream.codec_context.time_base = out_tb
        stream.width, stream.height = vin.codec_context.width, vin.codec_context.height
        stream.pix_fmt = "yuv420p"

        def drain() -> None:
            nonlocal out_frames
            while True:
                try:
                    f = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    return
                if limit is not None and out_frames >= limit:
                    continue
                f.pts, f.time_base = out_frames, out_tb  # the output's own clock: frame k at k / (factor x rate)
                for packet in stream.encode(f):
                    out.mux(packet)
                out_frames += 1

        last = None
        count = 0
        for frame in inp.decode(vin):
            if graph is None:
                graph = minterpolate_graph(frame.width, frame.height, factor, graph_rate)
            last = frame.to_ndarray(format="rgb24")
            rgb = av.VideoFrame.from_ndarray(last, format="rgb24")
            rgb.pts, rgb.time_base = count, tb
            graph.push(rgb)
            count += 1
            drain()
        if graph is not None and last is not None:
            limit = count * factor
            for extra in range(2):  # the filter lags its input by up to two frames
                if out_frames >= limit:
                    break
                tail = av.VideoFrame.from_ndarray(last, format="rgb24")
                tail.pts, tail.time_base = count + extra, tb
                graph.push(tail)
                drain()
            graph.push(None)
            drain()
        for packet in stream.encode():
            out.mux(packet)
    dt = time.perf_counter() - t0
    return {"seconds": dt, "input_frames": count, "output_frames": out_frames,
            "output_fps": out_frames / dt if dt > 0 else 0.0}
