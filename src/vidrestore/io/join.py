"""Join a job's chunk files into its output by stream copy: the video packets of every chunk in order
(encoded with the job's settings and timestamps, :class:`vidrestore.pipeline.Part`), the source's audio,
subtitles and other streams muxed once, from the original (:mod:`vidrestore.io.remux`), into a temp file
renamed onto the target at the end. Nothing is decoded or encoded here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import av

from vidrestore.errors import InputError, OutputError, one_line
from vidrestore.io import failures
from vidrestore.io.files import commit, remove_temp
from vidrestore.io.probe import open_input
from vidrestore.io.remux import SideStreams
from vidrestore.io.writer import WriterSpec


Timing = Sequence[Sequence[int | None]]  # (pts, dts, duration) per packet, in the job's output time base


def join(parts: Sequence[tuple[Path, Timing]], spec: WriterSpec, notes: Callable[[str], None] | None = None) -> Path:
    """Write ``parts`` (chunk files of one video stream, each with the timing of its packets as the encoder
    made them) and the side streams of ``spec.source`` into ``spec.temp``, then move it onto
    ``spec.target``; the temp file is removed on any failure. The muxer gets each packet with the
    timestamps it would have got in a run without chunks, not the chunk file's (which its container may
    have rounded, to milliseconds say), so both round alike."""
    note = notes or (lambda msg: None)
    out: Any = None
    side = SideStreams(spec.source, spec.source_video_index, spec.format_name, note)
    try:
        out = av.open(str(spec.temp), mode="w", format=spec.format_name, metadata_errors="replace")
        with open_input(parts[0][0]) as first:
            video = out.add_stream_from_template(first.streams.video[0])
        video.time_base = spec.time_base
        video.metadata.update(dict(spec.video_metadata))
        side.add_to(out)
        out.metadata.update(dict(spec.container_metadata))
        out.start_encoding()
        for path, timing in parts:
            _copy_video(path, timing, out, video, side, spec)
        side.finish()
        out.close()
        out = None
    except BaseException as err:
        _close(out)
        remove_temp(spec.temp)
        if not isinstance(err, Exception):
            raise
        mapped = failures.typed(err, writing=spec.target, doing="joining the chunks")
        if mapped is not None:
            raise mapped from None
        if isinstance(err, ValueError):
            raise OutputError(f"cannot join the chunks of {spec.target}: {one_line(err)}") from None
        raise
    finally:
        side.close()
    return commit(spec.temp, spec.target, overwrite=spec.overwrite)


def _copy_video(path: Path, timing: Timing, out: Any, video: Any, side: SideStreams, spec: WriterSpec) -> None:
    tb = spec.time_base
    with open_input(path) as src:
        stream = src.streams.video[0]
        packets = (p for p in src.demux(stream) if p.size)
        n = -1
        for n, packet in enumerate(packets):
            if n >= len(timing):
                raise InputError(f"chunk {path.name} holds more video packets than were written to it")
            pts, dts, duration = timing[n]
            packet.stream = video
            packet.time_base = tb
            packet.pts, packet.dts, packet.duration = pts, dts, duration
            out.mux(packet)
            if pts is not None:
                side.follow(float((pts + duration) * tb))
        if n + 1 != len(timing):
            raise InputError(f"chunk {path.name} holds {n + 1} of the {len(timing)} video packets written to it")


def _close(out: Any) -> None:
    if out is not None:
        try:
            out.close()
        except Exception:
            pass
