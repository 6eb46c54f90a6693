"""Training batches from cached windows (:mod:`vidrestore.train.cache`), with augmentations that cost
nothing to make: a random crop, flips and 90-degree rotations (the flows' vectors turned with the image),
time reversal (the window played backwards: the flows of the pair swapped, the outer flows exchanged,
t -> 1 - t) and a little colour jitter (the same on inputs and targets)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vidrestore.model.prior_net import PriorFlows
from vidrestore.train.cache import WindowCache, read_windows
from vidrestore.train.prior_data import KINDS, SHARP, Batch, Windows

def flip_flow(flow: np.ndarray, axis: str) -> np.ndarray:
    """A flow [..., H, W, 2] of an image mirrored left-right (``x``) or top-bottom (``y``)."""
    if axis == "x":
        out = flow[..., :, ::-1, :].copy()
        out[..., 0] *= -1
    else:
        out = flow[..., ::-1, :, :].copy()
        out[..., 1] *= -1
    return out


def rotate_image(img: np.ndarray, k: int) -> np.ndarray:
    """[..., H, W, C] turned k quarter turns counterclockwise (as ``np.rot90`` turns a matrix)."""
    return np.rot90(img, k, axes=(-3, -2))


def rotate_flow(flow: np.ndarray, k: int) -> np.ndarray:
    """The flow [..., H, W, 2] of an image turned by :func:`rotate_image`: the field turned and each vector
    with it. A quarter turn sends the pixel at (x, y) to (y, W - 1 - x), so a motion (dx, dy) becomes
    (dy, -dx)."""
    out = rotate_image(flow, k)
    for _ in range(k % 4):
        out = np.stack((out[..., 1], -out[..., 0]), axis=-1)
    return out


class Augment:
    """The random transforms of one window. ``rng``: numpy Generator."""

    def __init__(self, rng: np.random.Generator, crop: int, size: int, reversible: bool) -> None:
        self.y = int(rng.integers(0, size - crop + 1))
        self.x = int(rng.integers(0, size - crop + 1))
        self.crop = crop
        self.mirror = bool(rng.random() < 0.5)
        self.turns = int(rng.integers(0, 4))
        self.reverse = reversible and bool(rng.random() < 0.5)
        self.gain = (1.0 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)  # colour jitter, per channel
        self.offset = np.float32(rng.uniform(-0.03, 0.03))

    def space(self, arr: np.ndarray, flow: bool = False) -> np.ndarray:
        c = self.crop
        out = arr[..., self.y:self.y + c, self.x:self.x + c, :]
        if self.mirror:
            out = flip_flow(out, "x") if flow else out[..., :, ::-1, :]
        if self.turns:
            out = rotate_flow(out, self.turns) if flow else rotate_image(out, self.turns)
        return np.ascontiguousarray(out)

    def colour(self, u8: np.ndarray) -> torch.Tensor:
        """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1], jittered."""
        x = torch.from_numpy(u8.astype(np.float32) * (1 / 255.0) * self.gain + self.offset).clamp_(0.0, 1.0)
        return x.movedim(-1, -3)


def _item(w: Windows, i: int, aug: Augment, times_wanted: int, rng: np.random.Generator):
    inputs, key, flows = w.inputs[i], w.key[i], w.flows[i].astype(np.float32)
    valid = np.nonzero(w.times[i] >= 0)[0]
    pick = rng.choice(valid, size=times_wanted, replace=len(valid) < times_wanted) if times_wanted else valid[:0]
    pick = np.sort(pick)
    times = w.times[i][pick]
    inter = w.inter[i][pick]
    if aug.reverse:  # played backwards: F(i+2), F(i+1), F(i), F(i-1); the key is F(i+1)
        inputs = inputs[::-1]
        key = key[::-1]
        flows = flows[[1, 0, 3, 2]]
        times = 1.0 - times
    return (aug.colour(aug.space(inputs)), aug.colour(aug.space(key[0])), aug.colour(aug.space(inter)),
            torch.from_numpy(np.ascontiguousarray(times, dtype=np.float32)),
            torch.from_numpy(aug.space(flows, flow=True)).permute(0, 3, 1, 2))


def make_batch(windows: Sequence[tuple[Windows, int]], crop: int, times_wanted: int, rng: np.random.Generator,
               source: str) -> Batch:
    """A batch of the given (windows, index) items, cropped to ``crop`` and augmented."""
    items = []
    for w, i in windows:
        size = int(w.inputs.shape[-2])
        aug = Augment(rng, min(crop, size), size, bool(w.reversible[i]))
        items.append(_item(w, i, aug, times_wanted, rng))
    inputs, key, inter, times, flows = (torch.stack(parts) for parts in zip(*items))
    prior = PriorFlows(flows[:, 0], flows[:, 1], flows[:, 2])
    return Batch(inputs, key, inter, times, prior, source == "interp", source)


class CachedBatches:
    """Batches drawn from the cache's shards (memory-mapped; the list is read again every ``rescan`` batches,
    so shards a filler adds are used and those it deletes are dropped)."""

    def __init__(self, cache: WindowCache, seed: int, rescan: int = 200) -> None:
        self.cache = cache
        self.rng = np.random.default_rng(seed)
        self.rescan = rescan
        self._count = 0
        self._by_kind: dict[int, list[tuple[Windows, int]]] = {}
        self._scan()

    def _scan(self) -> None:
        by_kind: dict[int, list[tuple[Windows, int]]] = {}
        for path in self.cache.shards():
            try:
                w = read_windows(path)
            except (OSError, ValueError):  # deleted by the filler meanwhile
                continue
            for kind in np.unique(w.kind):
                by_kind.setdefault(int(kind), []).append((w, len(w)))
        self._by_kind = by_kind

    def windows(self, source: str) -> int:
        return sum(n for _, n in self._by_kind.get(KINDS[source], []))

    def next(self, source: str, batch: int, crop: int, times_wanted: int) -> Batch:
        self._count += 1
        if self._count % self.rescan == 0:
            self._scan()
        shards = self._by_kind.get(KINDS[source])
        if not shards:
            raise RuntimeError(f"the cache has no {source} windows")
        picks = []
        for _ in range(batch):
            w, n = shards[int(self.rng.integers(len(shards)))]
            picks.append((w, int(self.rng.integers(n))))
        try:
            return make_batch(picks, crop, times_wanted, self.rng, source)
        except (OSError, ValueError):  # a shard deleted under us: read the list again
            self._scan()
            return self.next(source, batch, crop, times_wanted)


def validation_batches(windows: dict[str, Windows], batch: int = 8) -> list[tuple[str, Batch]]:
    """The fixed validation windows as batches: whole windows, no augmentation, every target time."""
    out = []
    for source, w in windows.items():
        for start in range(0, len(w), batch):
            idx = range(start, min(start + batch, len(w)))
            n_t = int((w.times[start] >= 0).sum())
            inputs = torch.from_numpy(w.inputs[idx.start:idx.stop].astype(np.float32) / 255).movedim(-1, -3)
            key = torch.from_numpy(w.key[idx.start:idx.stop, 0].astype(np.float32) / 255).movedim(-1, -3)
            inter = torch.from_numpy(w.inter[idx.start:idx.stop, :n_t].astype(np.float32) / 255).movedim(-1, -3)
            times = torch.from_numpy(np.ascontiguousarray(w.times[idx.start:idx.stop, :n_t]))
            flows = torch.from_numpy(w.flows[idx.start:idx.stop].astype(np.float32)).permute(0, 1, 4, 2, 3)
            prior = PriorFlows(flows[:, 0], flows[:, 1], flows[:, 2])
            out.append((source, Batch(inputs, key, inter, times, prior, bool(w.kind[start] == SHARP), source)))
    return out

