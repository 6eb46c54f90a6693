"""The packet index of a video stream: every frame's timestamp and which frames are key frames, read from
the packets alone (no decoding). A long job is split into chunks at key frames (:mod:`vidrestore.scale.chunks`),
and a chunk's reader seeks to its key frame and checks the timestamps it decodes against this index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from vidrestore.io.probe import open_input


@dataclass(frozen=True)
class FrameIndex:
    """``pts`` of every frame in presentation order, the indices of the key frames, and where the last
    frame ends (its pts plus its duration), all in the stream's time base."""

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    end: int

    def __len__(self) -> int:
        return len(self.pts)


def frame_index(path: Path, stream_index: int) -> FrameIndex | None:
    """The index of video stream ``stream_index``, or None where it cannot locate frames exactly: a packet
    without a timestamp, two packets with the same one, or a damaged packet stream."""
    pts: list[int] = []
    keys: list[int] = []
    last_duration = 0  # of the packet with the latest timestamp (the frame shown last)
    top: int | None = None
    try:
        with open_input(path) as container:
            stream = container.streams[stream_index]
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if packet.pts is None:
                    return None
                p = int(packet.pts)
                pts.append(p)
                if packet.is_keyframe:
                    keys.append(p)
                if top is None or p >= top:
                    top, last_duration = p, int(packet.duration or 0)
    except av.error.FFmpegError:
        return None
    order = sorted(pts)
    if not order or len(set(order)) != len(order):
        return None
    where = {p: i for i, p in enumerate(order)}
    step = (order[-1] - order[0]) // max(1, len(order) - 1) if len(order) > 1 else 1
    end = order[-1] + (last_duration or max(1, step))
    return FrameIndex(tuple(order), tuple(sorted(where[p] for p in keys)), end)
