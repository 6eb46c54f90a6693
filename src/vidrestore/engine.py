"""Run the model over a stream of frames: sliding windows, feature cache, batching, tiles.

The engine pulls input frames lazily and keeps only what the next windows need: the frames
F(i-1) .. F(i+2) of the windows in the current batch and their per-frame encoder features
(computed once per frame and reused by every window the frame appears in). Memory is therefore
flat in the length of the video. For each input frame it yields ``factor`` output frames, in
output order: the (restored) frame itself, then ``factor - 1`` frames at i + j/factor, or copies
of the frame where there is no next frame in the same scene (video end, scene cut).

Used by the ``enhance`` pipeline and by ``vidrestore eval`` (the same code path for both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from vidrestore import memory, threads
from vidrestore.config import (DEFAULT_SCENE_THRESHOLD, DEFAULT_TILE_OVERLAP, MAX_FACTOR, MIN_FACTOR, MODES, RunOptions,
                               effective_factor)
from vidrestore.errors import ProcessingError
from vidrestore.frames import to_tensor
from vidrestore.model.prior_net import PriorFlows
from vidrestore.prior import PairFlows
from vidrestore.runtime import Runtime, param_dtype
from vidrestore.tiler import Canvas, Tile, pad_to_multiple, padded_size, tile_grid
from vidrestore.windows import SceneDetector, Window, plan_window

Features = Sequence[torch.Tensor]



@dataclass(frozen=True)
class EngineConfig:
    """How to run the model over a stream (the model, device and dtype come in a :class:`Runtime`).

    factor: output frames per input frame (1..16); forced to 1 in ``deblur`` mode.
    mode: ``joint`` (restore every input frame and add new ones), ``deblur`` (restore only),
        ``interp`` (input frames passed through untouched, only new frames added).
    batch: windows (times tiles) per forward pass.
    tile: tile side in pixels, or None for whole frames; tiles overlap by ``tile_overlap``.
    scene_threshold: scene-cut threshold (see :mod:`vidrestore.windows`), None = no detection.
    gpu_memory_gb: CUDA memory one forward pass may use (activations and features), in GB. None:
        min(8 GiB, half the free memory); 0: no limit; ignored on other devices. When whole frames
        would not fit (measured by one probe forward on a small crop, then scaled by pixel count,
        which is exact for this network: every part of it is linear in H*W), the engine lowers the
        batch, then picks the largest tile side that fits. An explicit ``tile`` is kept as given.
    """

    factor: int = 2
    mode: str = "joint"
    batch: int = 1
    tile: int | None = None
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD
    gpu_memory_gb: float | None = None
    time_chunk: int | None = None  # in-between frames per pass (0: all; None: 1 on the CPU, all elsewhere)

    def __post_init__(self) -> None:
        if self.time_chunk is not None and self.time_chunk < 0:
            raise ValueError("time_chunk must be >= 0")
        if not MIN_FACTOR <= int(self.factor) <= MAX_FACTOR:
            raise ValueError(f"factor {self.factor} out of range {MIN_FACTOR}..{MAX_FACTOR}")
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} not one of {MODES}")
        if self.batch < 1:
            raise ValueError("batch must be >= 1")
        if self.gpu_memory_gb is not None and self.gpu_memory_gb < 0:
            raise ValueError("memory budget must be >= 0")

    @property
    def effective_factor(self) -> int:
        return effective_factor(self.mode, self.factor)

    @classmethod
    def of(cls, factor: int, mode: str, run: RunOptions,
           scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD) -> "EngineConfig":
        """The engine settings of a job at ``factor`` in ``mode`` with run options ``run``."""
        return cls(factor=factor, mode=mode, batch=run.batch, tile=run.tile, tile_overlap=run.tile_overlap,
                   scene_threshold=scene_threshold, gpu_memory_gb=run.gpu_memory_gb)


@dataclass
class EngineStats:
    """What the engine held at most at any one time (for memory checks) and how much it ran."""

    frames_in: int = 0
    frames_out: int = 0
    max_frames_held: int = 0
    max_features_cached: int = 0
    encoded_frames: int = 0
    windows: int = 0
    forward_calls: int = 0
    cuts: int = 0
    oom_retries: int = 0
    memory_trims: int = 0  # times the allocator's free pages went back to the kernel (CPU)
    planned_tile: int | None = None  # tile side chosen by the memory budget (None: whole frames)
    planned_batch: int | None = None
    probe_bytes_per_pixel: float | None = None
    cut_indices: list[int] = field(default_factory=list)


# on the CPU, every CPU_TRIM_EVERY groups of windows the allocator's free pages beyond CPU_FREE_KEPT go back to
# the kernel: freed blocks are kept for reuse (mapped afresh for every tensor, the kernel's time was twice the
# model's own at 1280x720 8x joint), but they fragment, and the process grew with them over a long video
# (1.07 GB after 10 frames, 1.49 GB after 60); trimming after every group cost 11x the page faults
CPU_TRIM_EVERY = 8
CPU_FREE_KEPT = 64 * 2**20
# on the CPU (whose memory is not planned by a probe), frames larger than 1080p run in tiles of this side: at
# 3840x2160 (3 frames, 2-core CPU) 512 px tiles took 3.2 GB instead of 5.9 at 8x joint and 2.6 instead of 4.0
# at 2x interp, and less time (1:46 instead of 3:22; 15 s instead of 19): a whole frame's tensors are mapped
# fresh for every use (the kernel's time was 1.4x the model's own)
CPU_WHOLE_FRAME_PIXELS = 1920 * 1088
CPU_TILE = 512

# worker threads computing the flow prior (OpenCV DIS releases the GIL: they overlap with the network)
PRIOR_WORKERS = 2


def _crop(t: torch.Tensor, tile: Tile) -> torch.Tensor:
    """``tile``'s part of a padded [1, C, Hp, Wp] tensor (the tensor itself for a whole-frame tile)."""
    if tile.y0 == 0 and tile.x0 == 0 and tile.h == t.shape[-2] and tile.w == t.shape[-1]:
        return t
    return t[..., tile.y0:tile.y0 + tile.h, tile.x0:tile.x0 + tile.w]


def _batch(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the batch; a single part is used as is (no copy)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class Engine:
    """Streams frames through a :class:`Runtime`'s model; see the module docstring."""

    def __init__(self, runtime: Runtime, cfg: EngineConfig) -> None:
        self.runtime = runtime
        self.model = runtime.model
        self.cfg = cfg
        self.factor = cfg.effective_factor
        self.device = runtime.device
        self.multiple = int(getattr(getattr(self.model, "config", None), "multiple", 1) or 1)
        self.param_dtype = param_dtype(self.model)
        self.stats = EngineStats()
        self._chunk = cfg.batch  # items (window x tile) per forward; halved on out-of-memory
        # in-between frames made at once: on the CPU one at a time (at 1280x720 8x joint, all seven at once took
        # twice the memory, and the kernel's time zeroing fresh pages was twice the model's own)
        self._time_chunk = cfg.time_chunk if cfg.time_chunk is not None else (1 if self.device.type == "cpu" else 0)
        self._tile = cfg.tile
        self._tiles: list[Tile] | None = None
        # per-run state
        self._arrays: dict[int, np.ndarray] = {}
        self._tensors: dict[int, torch.Tensor] = {}
        self._feats: dict[tuple[int, int], Features] = {}
        self._pairs: PairFlows | None = None  # the flow prior's DIS flows (while a run is on)
        self._flows: dict[tuple[int, int], torch.Tensor] = {}  # ... as padded tensors on the device
        self._cuts: dict[int, bool] = {}
        self._size: tuple[int, int] | None = None
        self._in_dtype: np.dtype | None = None
        self._planned_for: tuple[int, int] | None = None
        self._groups = 0  # groups of windows run (per run): every CPU_TRIM_EVERY-th returns free memory

    # ------------------------------------------------------------------------------------------
    # public
    # ------------------------------------------------------------------------------------------
    def process(self, frames: Iterable[np.ndarray], cuts: Iterable[bool] | None = None,
                first: int = 0) -> Iterator[np.ndarray]:
        """Yield exactly ``N * factor`` HxWx3 frames (same dtype as the input: uint8 or uint16).

        ``cuts[j]`` True means a scene cut between input j-1 and j; None detects cuts with the
        configured threshold. In ``interp`` mode, output frame j*factor *is* the input array j
        (the same object), so callers can recognise untouched frames. ``first``: the index of the first
        frame in the whole video (a chunk of a longer job): windows are batched at the same places as in
        a run over the whole video, so that a chunk computes what that run computes.
        """
        self._reset()
        self.stats = EngineStats()
        self._planned_for = None
        self._groups = 0
        frame_iter = iter(frames)
        cut_iter = iter(cuts) if cuts is not None else None
        detector = SceneDetector(self.cfg.scene_threshold) if cut_iter is None else None
        available = 0
        ended = False
        next_center = 0
        pending: list[Window] = []
        model_was_training = self.model.training
        self.model.eval()
        self._pairs = PairFlows(PRIOR_WORKERS)
        try:
            while True:
                while not ended and available <= next_center + 2:
                    try:
                        arr = next(frame_iter)
                    except StopIteration:
                        ended = True
                        break
                    self._accept(available, arr, cut_iter, detector)
                    available += 1
                if next_center >= available:
                    break
                pending.append(plan_window(next_center, available, self._cut_before))
                next_center += 1
                done = ended and next_center >= available
                per_batch = self._windows_per_batch()
                if len(pending) >= per_batch or done or (first + next_center) % per_batch == 0:
                    outputs = self._run(pending)
                    pending = []
                    self._groups += 1
                    if self.device.type == "cpu" and self._groups % CPU_TRIM_EVERY == 0:
                        if threads.release_freed_memory(CPU_FREE_KEPT):
                            self.stats.memory_trims += 1
                    self._evict(below=next_center - 1)
                    for out in outputs:
                        self.stats.frames_out += 1
                        yield out
        finally:
            self.model.train(model_was_training)
            self._reset()
            if self._pairs is not None:
                self._pairs.close()
                self._pairs = None

    # ------------------------------------------------------------------------------------------
    # input bookkeeping
    # ------------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._arrays.clear()
        self._tensors.clear()
        self._feats.clear()
        self._flows.clear()
        self._cuts.clear()

    def _accept(self, index: int, arr: np.ndarray, cut_iter: Iterator[bool] | None,
                detector: SceneDetector | None) -> None:
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"frame {index}: expected HxWx3 uint8 or uint16 RGB, got {arr.shape} {arr.dtype}")
        size = (int(arr.shape[0]), int(arr.shape[1]))
        if self._size is None or index == 0:
            if self._size != size:
                self._tiles = None
            self._size = size
            self._in_dtype = arr.dtype
        elif size != self._size:
            raise ProcessingError(f"frame {index} is {size[1]}x{size[0]}, earlier frames were "
                                  f"{self._size[1]}x{self._size[0]}: size changes mid-stream are not supported")
        if cut_iter is not None:
            try:
                cut = bool(next(cut_iter)) and index > 0
            except StopIteration:
                cut = False
        else:
            assert detector is not None
            cut = detector(arr) and index > 0
        self._cuts[index] = cut
        if cut:
            self.stats.cuts += 1
            self.stats.cut_indices.append(index)
        self._arrays[index] = arr
        if self._pairs is not None:
            self._pairs.add(index, arr, cut)
        self.stats.frames_in += 1
        self.stats.max_frames_held = max(self.stats.max_frames_held, len(self._arrays))

    def _cut_before(self, index: int) -> bool:
        return self._cuts.get(index, False)

    def _evict(self, below: int) -> None:
        for d in (self._arrays, self._tensors, self._cuts):
            for k in [k for k in d if k < below]:
                del d[k]
        for k in [k for k in self._feats if k[0] < below]:
            del self._feats[k]
        for k in [k for k in self._flows if min(k) < below]:
            del self._flows[k]
        if self._pairs is not None:
            self._pairs.evict(below)

    def _windows_per_batch(self) -> int:
        return max(1, self._chunk // max(1, len(self._current_tiles())))

    def _current_tiles(self) -> list[Tile]:
        if self._tiles is None:
            if self._size is None:
                return [Tile(0, 0, 0, 0, 0, 0, 0, 0)]
            hp, wp = padded_size(*self._size, self.multiple)
            self._tiles = tile_grid(hp, wp, self._tile, self.cfg.tile_overlap, self.multiple)
        return self._tiles

    def _tensor(self, index: int) -> torch.Tensor:
        """Frame ``index`` as a padded [1, 3, Hp, Wp] tensor on the device, in the model's dtype."""
        t = self._tensors.get(index)
        if t is None:
            t = pad_to_multiple(to_tensor(self._arrays[index], self.device), self.multiple).to(self.param_dtype)
            self._tensors[index] = t
        return t

    def _flow(self, a: int, b: int) -> torch.Tensor:
        """The prior's flow from frame ``a`` to ``b`` as a [1, 2, Hp, Wp] float32 tensor on the device, padded
        like the frames (replicated: the padding continues the border's motion)."""
        t = self._flows.get((a, b))
        if t is None:
            assert self._pairs is not None and self._size is not None
            flow = torch.from_numpy(self._pairs.get(a, b, self._size)).permute(2, 0, 1).unsqueeze(0).to(self.device)
            hp, wp = padded_size(*self._size, self.multiple)
            t = torch.nn.functional.pad(flow, (0, wp - flow.shape[-1], 0, hp - flow.shape[-2]), mode="replicate")
            self._flows[(a, b)] = t
        return t

    def _prior(self, windows: list[Window], chunk: list[tuple[int, int]], tiles: list[Tile]) -> PriorFlows:
        """The chunk's prior (one item per window and tile): F(i) -> F(i+1), back, and F(i) -> F(i-1)."""
        pairs = ((1, 2), (2, 1), (1, 0))
        parts = []
        for a, b in pairs:
            ids = [(windows[wi].frames[a], windows[wi].frames[b], tiles[ti]) for wi, ti in chunk]
            parts.append(_batch([_crop(self._flow(fa, fb), tile) for fa, fb, tile in ids]))
        return PriorFlows(*parts)

    # ------------------------------------------------------------------------------------------
    # running the model
    # ------------------------------------------------------------------------------------------
    def _budget_bytes(self) -> float | None:
        return memory.budget_bytes(self.device, self.cfg.gpu_memory_gb)

    def _probe_bytes_per_pixel(self) -> float:
        assert self._size is not None
        return memory.probe_bytes_per_pixel(self.runtime, padded_size(*self._size, self.multiple), self.multiple,
                                            self.factor, self.cfg.mode)

    def _plan(self) -> None:
        """Fit batch and tiles to the memory budget, once per frame size (only without an explicit tile)."""
        if self._size is None or self._planned_for == self._size:
            return
        self._planned_for = self._size
        if self.cfg.tile is not None:
            return
        budget = self._budget_bytes()
        if budget is None:
            hp, wp = padded_size(*self._size, self.multiple)
            if self.device.type == "cpu" and hp * wp > CPU_WHOLE_FRAME_PIXELS:
                # beyond 1080p a whole frame costs more memory and more time than tiles
                side = -(-CPU_TILE // self.multiple) * self.multiple
                self.stats.planned_tile = side
                self._set_tile(side)
            return
        bpp = self._probe_bytes_per_pixel()
        hp, wp = padded_size(*self._size, self.multiple)
        chunk, tile = memory.plan_memory(hp, wp, bpp, budget, self.cfg.batch, self.multiple, memory.MIN_TILE)
        self.stats.probe_bytes_per_pixel = bpp
        self.stats.planned_batch, self.stats.planned_tile = chunk, tile
        self._chunk = chunk
        self._set_tile(tile)

    def _set_tile(self, tile: int | None) -> None:
        if tile != self._tile:
            self._tile = tile
            self._tiles = None
            self._feats.clear()  # cached per tile: the tiles changed

    def _run(self, windows: list[Window]) -> list[np.ndarray]:
        self._plan()
        while True:
            try:
                with torch.inference_mode(), self.runtime.autocast():
                    return self._run_once(windows)
            except memory.OOM_ERRORS as err:  # type: ignore[misc]
                self._shrink_after_oom(err)

    def _shrink_after_oom(self, err: BaseException) -> None:
        assert self._size is not None
        self.stats.oom_retries += 1
        self._chunk, tile = memory.shrink_after_oom(self.device, err, self._chunk, self._tile,
                                                    padded_size(*self._size, self.multiple), self.multiple)
        self._set_tile(tile)

    def _run_once(self, windows: list[Window]) -> list[np.ndarray]:
        k = self.factor
        tiles = self._current_tiles()
        n_t = k - 1
        need_key = self.cfg.mode != "interp"
        inter_ws = [w for w in windows if w.interpolate and n_t > 0]
        key_only_ws = [w for w in windows if not (w.interpolate and n_t > 0)] if need_key else []
        keys: dict[int, np.ndarray] = {}
        inters: dict[int, list[np.ndarray]] = {}
        if inter_ws:
            times = torch.arange(1, k, device=self.device, dtype=torch.float32) / k
            key_t, inter_t = self._restore(inter_ws, tiles, times, with_key=need_key)
            for b, w in enumerate(inter_ws):
                if key_t is not None:
                    keys[w.center] = key_t[b]
                inters[w.center] = inter_t[b]
        if key_only_ws:
            times = torch.zeros(0, device=self.device, dtype=torch.float32)
            key_t, _ = self._restore(key_only_ws, tiles, times, with_key=True)
            assert key_t is not None
            for b, w in enumerate(key_only_ws):
                keys[w.center] = key_t[b]
        outputs: list[np.ndarray] = []
        for w in windows:
            key = keys.get(w.center)
            key_arr = self._arrays[w.center] if key is None else key
            outputs.append(key_arr)
            if w.center in inters:
                outputs.extend(inters[w.center])
            else:
                outputs.extend([key_arr] * n_t)
        self.stats.windows += len(windows)
        return outputs

    def _ensure_features(self, needed: list[tuple[int, int]], tiles: list[Tile]) -> None:
        missing = [key for key in dict.fromkeys(needed) if key not in self._feats]
        for start in range(0, len(missing), max(1, self._chunk)):
            chunk = missing[start:start + max(1, self._chunk)]
            x = _batch([self._tile_of(f, tiles[t]) for f, t in chunk])
            feats = self.model.encode(x)
            self.stats.forward_calls += 1
            for b, key in enumerate(chunk):
                self._feats[key] = tuple(part[b:b + 1] for part in feats)
            self.stats.encoded_frames += len(chunk)
        self.stats.max_features_cached = max(self.stats.max_features_cached, len({f for f, _ in self._feats}))

    def _tile_of(self, index: int, tile: Tile) -> torch.Tensor:
        return _crop(self._tensor(index), tile)

    def _restore(self, windows: list[Window], tiles: list[Tile], times: torch.Tensor, with_key: bool
                 ) -> tuple[list[np.ndarray] | None, list[list[np.ndarray]]]:
        """Run ``restore`` over every (window, tile) item in chunks, pasting each output tile's core into the
        host frames as it comes (the device holds one chunk's outputs at a time)."""
        assert self._size is not None and self._in_dtype is not None
        h, w = self._size
        n_t = int(times.shape[0])
        items = [(wi, ti) for wi in range(len(windows)) for ti in range(len(tiles))]
        keys = Canvas(len(windows), h, w, self._in_dtype) if with_key else None
        inters = Canvas(len(windows) * n_t, h, w, self._in_dtype) if n_t else None
        sharp = self.cfg.mode == "interp"
        for start in range(0, len(items), self._chunk):
            chunk = items[start:start + self._chunk]
            needed = [(windows[wi].frames[p], ti) for wi, ti in chunk for p in range(4)]
            self._ensure_features(needed, tiles)
            frames4, feats4 = [], []
            for p in range(4):  # window position: F(i-1), F(i), F(i+1), F(i+2)
                ids = [(windows[wi].frames[p], ti) for wi, ti in chunk]
                frames4.append(_batch([self._tile_of(f, tiles[ti]) for f, ti in ids]))
                parts = [self._feats[key] for key in ids]
                feats4.append(tuple(_batch(list(level)) for level in zip(*parts)))
            key_out, inter_parts = self.model.restore_parts(frames4, feats4, times,
                                                            prior=self._prior(windows, chunk, tiles),
                                                            with_key=with_key, sharp=sharp,
                                                            time_chunk=self._time_chunk)
            self.stats.forward_calls += 1
            for b, (wi, ti) in enumerate(chunk):
                if keys is not None and key_out is not None:
                    keys.paste(wi, key_out[b:b + 1], tiles[ti])
            del key_out
            done = 0
            for part in inter_parts:  # each part's frames go to the host frames as they come
                if inters is not None:
                    for b, (wi, ti) in enumerate(chunk):
                        inters.paste(wi * n_t + done, part[b], tiles[ti])
                done += int(part.shape[1])
                del part
        key_np = keys.split() if keys is not None else None
        inter_np: list[list[np.ndarray]] = [[] for _ in windows]
        if inters is not None:
            flat = inters.split()
            inter_np = [flat[b * n_t:(b + 1) * n_t] for b in range(len(windows))]
        return key_np, inter_np
