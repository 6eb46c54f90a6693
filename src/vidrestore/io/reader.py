"""Decode a video on its own thread into a bounded queue of RGB frames with exact timestamps.

Every frame comes out as an HxWx3 RGB array (uint8 for 8-bit sources, uint16 for deeper ones),
with its presentation timestamp and duration in the stream's own time base, strictly increasing.
Decoding problems become :class:`InputError` with the frame number where decoding stopped:
an FFmpeg error while demuxing or decoding, fewer frames than the container declares, or a file
that ends well before its declared duration (a truncated Matroska file, for example). With a
:class:`Damage` policy (``--allow-gaps``) frames that cannot be decoded are left out or stood in for instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidrestore.errors import InputError, one_line
from vidrestore.io import failures
from vidrestore.io.probe import PacketReach, VideoInfo, open_input
from vidrestore.io.worker import Reading, Worker


# containers that store each frame's presentation time (a repeated or backward one is damage); AVI and raw
# streams do not (FFmpeg guesses them, and with B-frames its guesses can go back)
STAMPED = frozenset({"matroska", "webm", "mov", "mp4", "mpegts", "flv", "ogg", "nut"})

# after an error on frames that cannot be decoded part-way (the probe refused a file cut short before)
PAST_DAMAGE = "; --allow-gaps goes on without them"


@dataclass(frozen=True)
class Damage:
    """Frames the decoder cannot recover (a packet it refuses, frames it drops after damage): go on
    without them, instead of an InputError (--allow-gaps). ``rate``: the input's constant rate, whose grid
    from ``start`` (seconds) the output keeps; a copy of a neighbouring frame stands in for each one missing
    from it. None: they are left out, and the output, which follows the timestamps, keeps the gap."""

    rate: Fraction | None = None
    start: Fraction = Fraction(0)

    def grid_index(self, pts: int, time_base: Fraction) -> int:
        assert self.rate is not None
        return round((pts * time_base - self.start) * self.rate)

    def grid_pts(self, index: int, time_base: Fraction) -> int:
        assert self.rate is not None
        return round((self.start + index / self.rate) / time_base)


@dataclass(frozen=True)
class Span:
    """Frames ``first`` .. ``stop - 1`` (presentation order) of a video whose packet index is clean: their
    timestamps ``pts`` (sorted) and the one after them (``end``: the next frame's, or the last frame's end),
    and ``seek``, the timestamp of the key frame at or before ``first`` from which decoding starts."""

    first: int
    stop: int
    pts: tuple[int, ...]
    end: int
    seek: int


@dataclass
class DecodedFrame:
    index: int
    pts: int  # in the video stream's time base; strictly increasing
    duration: int  # in the same time base, > 0 (the decoder's value or the nominal frame step)
    rgb: np.ndarray  # HxWx3, uint8 or uint16
    raw: "av.VideoFrame | None" = None  # the decoded frame itself, when asked to keep it


def rgb_format_for(pix_fmt: str | None, bit_depth: int) -> str:
    """The RGB layout frames are converted to: rgb24 for 8-bit sources, rgb48le beyond."""
    return "rgb48le" if bit_depth > 8 else "rgb24"


class _Sequence:
    """The whole-file reader's frames in order, to its worker: each is held until the next gives its duration;
    a timestamp that repeats or goes back is renumbered (containers that store no frame times) or refused (with
    ``--allow-gaps``: the frame is left out); on a damaged constant-rate input's grid, a copy of the frame before
    stands in for each place the decoder left empty."""

    def __init__(self, reader: "FrameReader") -> None:
        info = reader.info
        self.reader = reader
        self.path = Path(info.path)
        self.tb = info.time_base
        self.count = 0  # frames handed on
        self.prev_pts: int | None = None
        # held until the next frame gives its duration: its timestamp, the frame, and whether it is another
        # frame standing in for one that could not be decoded
        self.pending: tuple[int, av.VideoFrame, bool] | None = None
        self.damage = reader.damage
        self.grid = self.damage if self.damage is not None and self.damage.rate is not None else None
        self.lost = 0  # places stood in for
        self.stamped = bool(set(info.container.split(",")) & STAMPED)  # the container stores each frame's time

    @property
    def held(self) -> int:
        """Frames so far, the one held included."""
        return self.count + (self.pending is not None)

    def put(self, pts: int, frame: "av.VideoFrame", stand_in: bool) -> bool:
        if self.pending is not None:
            r = self.reader
            if not r._worker.put(r._to_decoded(self.count, self.pending, pts - self.pending[0])):
                return False
            self.count += 1
        self.pending = (pts, frame, stand_in)
        return True

    def stand_ins(self, before: int, frame: "av.VideoFrame") -> bool:
        """Up to grid index ``before``: a copy of the frame before (else of ``frame``) in each place the decoder
        left empty, on a constant-rate grid that the output keeps."""
        assert self.grid is not None
        while (nxt := self.held) < before:
            copy = self.pending[1] if self.pending is not None else frame
            if not self.put(self.grid.grid_pts(nxt, self.tb), copy, True):
                return False
            self.lost += 1
        return True

    def emit(self, frame: "av.VideoFrame") -> bool:
        r, prev = self.reader, self.prev_pts
        pts = frame.pts
        if pts is None:
            pts = (prev + r._nominal_step) if prev is not None else 0
        if prev is not None and pts <= prev:  # a timestamp repeated or gone backwards
            if not self.stamped:
                pts = prev + 1  # AVI and raw streams store no presentation times: FFmpeg's guesses
            elif self.damage is None:
                raise InputError(f"input is damaged: its timestamps go back at frame {self.held} of {self.path} "
                                 f"({float(pts * self.tb):.3f} s after {float(prev * self.tb):.3f} s){PAST_DAMAGE}")
            else:
                r.frames_misplaced += 1  # --allow-gaps: left out (its place is another frame's)
                return True
        self.prev_pts = pts
        if self.grid is not None and not self.stand_ins(self.grid.grid_index(pts, self.tb), frame):
            return False
        return self.put(pts, frame, False)

    def finish(self) -> bool:
        """The last frame, with its own duration (else the nominal step)."""
        if self.pending is not None:
            r = self.reader
            ended = self.pending[1].duration or r._nominal_step
            return r._worker.put(r._to_decoded(self.count, self.pending, ended))
        return True


class FrameReader(Reading):
    """Iterate decoded frames of ``info.path`` while a background thread keeps decoding ahead.

    Use as a context manager (or call :meth:`close`) so the thread and the file are released
    on every path, including errors and Ctrl-C in the consumer.
    """

    def __init__(self, info: VideoInfo, keep_raw: bool = False, queue_size: int = 8, threads: int = 0,
                 span: Span | None = None, damage: "Damage | None" = None) -> None:
        self.info = info
        self.damage = damage  # None: a frame that cannot be decoded is an InputError
        self.span = span  # decode only these frames (a chunk of a longer job): seek, then decode forward
        self.keep_raw = keep_raw
        self.threads = threads  # decoder threads (vidrestore.threads); 0: FFmpeg's choice
        body = self._decode_all if span is None else self._decode_span
        self._worker = Worker(body, "reader", queue_size, on_error=self._decode_error)
        self.frames_read = 0
        self.rgb_format = rgb_format_for(info.pix_fmt, info.bit_depth)
        tb = info.time_base
        step = Fraction(1) / (info.rate * tb) if info.rate > 0 else Fraction(1)
        self._nominal_step = max(1, round(step))

    # -- producer side (the reader thread) -------------------------------------------------------
    def _decode_error(self, err: BaseException) -> BaseException:
        mapped = failures.typed(err, reading=Path(self.info.path))
        if mapped is not None:
            return mapped
        if isinstance(err, ValueError):  # PyAV's refusals of a damaged frame
            return InputError(f"cannot decode {self.info.path}: {one_line(err)}")
        return err  # a bug: the CLI says so

    def _video_stream(self, container: "av.container.InputContainer") -> "av.video.stream.VideoStream":
        """The video stream of ``container``, set up for threaded decoding."""
        stream = container.streams[self.info.video_index]
        stream.thread_type = "AUTO"
        if self.threads:
            stream.codec_context.thread_count = self.threads
        return stream

    def _decode_all(self) -> None:
        info = self.info
        path = Path(info.path)
        container = open_input(path)
        try:
            stream = self._video_stream(container)
            container_duration = container.duration / 1e6 if container.duration else None
            reach = PacketReach(info.rate)  # where the packets of any stream reached
            seq = _Sequence(self)
            try:
                for packet in container.demux():
                    if self._worker.stopping:
                        return
                    reach.add(packet)
                    if packet.stream.index != stream.index:
                        continue
                    try:
                        frames = stream.decode(packet)
                    except av.error.InvalidDataError as err:
                        if self.damage is None:
                            raise InputError(f"input is corrupt or truncated: {self._where(packet)} of {path} "
                                             f"cannot be decoded ({one_line(err)}){PAST_DAMAGE}") from None
                        continue  # counted with the frames the decoder dropped, at the end
                    for frame in frames:
                        if not seq.emit(frame):
                            return
                try:
                    for frame in stream.decode(None):
                        if not seq.emit(frame):
                            return
                except av.error.EOFError:
                    pass  # demux() already sent the flush packet
                if seq.grid is not None and seq.pending is not None and info.frame_count_exact:
                    if not seq.stand_ins(info.frame_count, seq.pending[1]):  # the last frames of the grid
                        return
            except av.error.FFmpegError as err:
                if seq.held == 0:
                    raise InputError(f"no decodable video frames in {path} ({one_line(err)})") from None
                raise InputError(f"input is corrupt or truncated: decoding failed at frame {seq.held} "
                                 f"of {path} ({one_line(err)})") from None
            start = container.start_time / 1e6 if container.start_time else 0.0
            self._check_whole(seq.held - seq.lost, seq.lost, reach, container_duration, start)
            seq.finish()
        finally:
            container.close()

    def _check_whole(self, total: int, lost: int, reach: PacketReach, container_duration: float | None,
                     start: float) -> None:
        """After the last packet: the ``total`` frames decoded (``lost`` of the grid's places stood in for)
        against what the file promises (the probe's one completeness rule, ``VideoInfo.frames_to_decode``), and
        where its packets reached against its duration. An InputError where frames are missing; with
        ``--allow-gaps``, the count of frames lost for the run's note instead."""
        info, path, damage = self.info, Path(self.info.path), self.damage
        if total == 0:
            raise InputError(f"no decodable video frames in {path}")
        scanned = info.frame_count if info.frame_count_exact else 0  # the packets the probe's scan counted
        declared = info.frames_to_decode
        if damage is not None:  # the probe refused a file cut short: what is missing was damaged
            self.frames_lost = max(0, max(declared, scanned) - total - self.frames_misplaced, lost)
            self.frames_stood_in = min(lost, self.frames_lost)
        elif info.surplus_frames:
            raise InputError(f"input is damaged: its index lists {info.index_frames} video frames but {path} "
                             f"holds {info.index_frames + info.surplus_frames} (repeated or added data){PAST_DAMAGE}")
        elif info.missing_frames:  # not cut short (the probe refused that): frames gone from within
            raise InputError(f"input is damaged: its index lists {info.index_frames} video frames but "
                             f"{info.missing_frames} of them are not in {path}{PAST_DAMAGE}")
        elif declared and total < declared:
            raise InputError(f"input is truncated or corrupt: decoding stopped at frame {total} "
                             f"of {declared} in {path}{PAST_DAMAGE}")
        elif scanned and total < scanned:
            raise InputError(f"input is corrupt: {scanned - total} of its {scanned} frames could not be decoded "
                             f"in {path}{PAST_DAMAGE}")
        if reach.short_of(container_duration, start) and not (damage is not None and self.frames_lost):
            raise InputError(f"input is truncated or corrupt: decoding stopped at frame {total} "
                             f"({reach.end - start:.2f} s of {container_duration:.2f} s) in {path}")

    def _decode_span(self) -> None:
        """The frames of ``self.span``, with their indices in the whole video and durations from its index."""
        span = self.span
        assert span is not None
        info = self.info
        path = Path(info.path)
        container = open_input(path)
        wanted = span.pts
        count = 0
        try:
            stream = self._video_stream(container)
            try:
                container.seek(span.seek, stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    if self._worker.stopping:
                        return
                    if frame.pts is None or frame.pts < wanted[0]:
                        continue
                    if frame.pts != wanted[count]:
                        raise InputError(f"{path}: frame {span.first + count} decoded with timestamp {frame.pts}, "
                                         f"its index says {wanted[count]}: this file cannot be split into chunks "
                                         "(run it with --chunks 1)")
                    nxt = wanted[count + 1] if count + 1 < len(wanted) else span.end
                    if not self._worker.put(self._convert(span.first + count, frame, nxt - frame.pts)):
                        return
                    count += 1
                    if count == len(wanted):
                        return
            except av.error.FFmpegError as err:
                past = PAST_DAMAGE if isinstance(err, av.error.InvalidDataError) else ""  # a packet it refused
                raise InputError(f"input is corrupt: decoding failed at frame {span.first + count} "
                                 f"of {path} ({one_line(err)}){past}") from None
            raise InputError(f"input is truncated or corrupt: decoding stopped at frame {span.first + count} "
                             f"of {path}")
        finally:
            container.close()

    def _where(self, packet: "av.Packet") -> str:
        """Where a packet's frame is shown: its time, and its frame number from the nominal rate."""
        if packet.pts is None or packet.time_base is None:
            return "a frame"
        t = float(packet.pts * packet.time_base) - self.info.start_time
        return f"the frame at {t:.2f} s (frame {round(t * self.info.rate)})"

    def _to_decoded(self, index: int, held: tuple[int, "av.VideoFrame", bool], duration: int) -> DecodedFrame:
        pts, frame, stand_in = held
        return self._convert(index, frame, duration, pts, keep_raw=not stand_in)

    def _convert(self, index: int, frame: "av.VideoFrame", duration: int, pts: int | None = None,
                 keep_raw: bool = True) -> DecodedFrame:
        """``frame`` in RGB, shown at ``pts`` (default: its own); the frame itself too where the reader keeps
        them and ``keep_raw`` (a frame standing in for another one does not pass through as it was decoded)."""
        size = {}
        if self.info.width and self.info.height and (frame.width, frame.height) != (self.info.width, self.info.height):
            size = {"width": self.info.width, "height": self.info.height}  # a mid-stream size change: rescale
        rgb = frame.to_ndarray(format=self.rgb_format, **size)
        if rgb.dtype != (np.uint16 if self.rgb_format == "rgb48le" else np.uint8):
            rgb = rgb.astype(np.uint16 if self.rgb_format == "rgb48le" else np.uint8)
        return DecodedFrame(index=index, pts=int(frame.pts if pts is None else pts), duration=max(1, int(duration)),
                            rgb=rgb, raw=frame if self.keep_raw and keep_raw else None)

