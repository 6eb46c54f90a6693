"""Where a long video is split: chunks start at key frames (a chunk's reader seeks there) where one is near,
preferring the key frames an encoder put at a scene cut, else at any frame (its reader seeks to the key frame
before it and decodes forward); each chunk decodes the neighbours its windows need on either
side (:data:`vidrestore.windows.HALO_BEFORE` / ``HALO_AFTER``), which it uses but does not emit. No I/O."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from vidrestore.io.index import FrameIndex
from vidrestore.io.reader import Span
from vidrestore.plan import AUTO_CHUNK_FRAMES
from vidrestore.windows import HALO_AFTER, HALO_BEFORE

MIN_CHUNK_FRAMES = HALO_BEFORE + HALO_AFTER + 1  # --chunks N: no chunk shorter than its halo
AUTO_MIN_FRAMES = 48  # --chunks auto: shorter chunks cost more in seeking and encoder start-up than they gain
AUTO_CHUNKS_PER_WORKER = 4  # --chunks auto: enough chunks per worker that the last ones balance the load


@dataclass(frozen=True)
class Chunk:
    """Input frames ``start`` .. ``stop - 1`` of a job, chunk ``number`` of its chunks."""

    number: int
    start: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


def scene_cut_keyframes(index: FrameIndex) -> set[int]:
    """Key frames an encoder placed early, before its regular key-frame interval was up: at a scene cut
    (x264, x265, libvpx and SVT-AV1 do). Intra-only streams have none."""
    keys = index.keyframes
    gaps = [b - a for a, b in zip(keys, keys[1:])]
    if len(gaps) < 2 or max(gaps) <= 1:
        return set()
    regular = Counter(gaps).most_common(1)[0][0]
    return {b for a, b in zip(keys, keys[1:]) if b - a < regular}


def plan_chunks(index: FrameIndex, chunks: int | None, workers: int = 1) -> tuple[Chunk, ...]:
    """Split the frames of ``index`` into about ``chunks`` chunks (None: ``auto``, from the length and the
    number of workers), none shorter than ``MIN_CHUNK_FRAMES`` (``AUTO_MIN_FRAMES`` for auto), each starting at
    the key frame nearest its ideal start if one is within half a chunk of it, else at the ideal start."""
    n = len(index)
    shortest = MIN_CHUNK_FRAMES
    if chunks is None:
        chunks = max(AUTO_CHUNKS_PER_WORKER * workers if workers > 1 else 1, -(-n // AUTO_CHUNK_FRAMES))
        shortest = AUTO_MIN_FRAMES
    chunks = max(1, min(chunks, n // shortest))
    starts = [k for k in index.keyframes if shortest <= k <= n - shortest]
    cuts = scene_cut_keyframes(index)
    bounds = [0]
    length = n / chunks
    for i in range(1, chunks):
        ideal = i * length
        near = [k for k in starts if k - bounds[-1] >= shortest and abs(k - ideal) <= length / 2]
        if near:
            # the nearest key frame, but a scene cut's within a quarter of a chunk wins
            bounds.append(min(near, key=lambda k: (abs(k - ideal) > length / 4 or k not in cuts, abs(k - ideal))))
            continue
        # no key frame near (a long GOP): the chunk starts where it should, its reader decoding from the key
        # frame before it (decoding is a small part of a frame's cost; idle workers are all of it)
        at = round(ideal)
        if at - bounds[-1] >= shortest and at <= n - shortest:
            bounds.append(at)
    bounds.append(n)
    return tuple(Chunk(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:])))


def span_of(index: FrameIndex, chunk: Chunk) -> Span:
    """What a chunk's reader decodes: the chunk and its halo, from the key frame at or before its first frame."""
    n = len(index)
    first = max(0, chunk.start - HALO_BEFORE)
    stop = min(n, chunk.stop + HALO_AFTER)
    key = max((k for k in index.keyframes if k <= first), default=0)
    end = index.pts[stop] if stop < n else index.end
    return Span(first=first, stop=stop, pts=index.pts[first:stop], end=end, seek=index.pts[key])
