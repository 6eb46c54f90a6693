"""Encode frames on a writer thread into a temp file beside the target, with the source's other
streams remuxed in (:mod:`vidrestore.io.remux`), and rename it to the target only at the very end.

* The video stream gets an exact rational frame rate and a time base in which every output
  timestamp is an integer; pts (and packet durations) are written explicitly.
* Frames smaller than the encoded size (an odd size padded to even) get their last row/column
  repeated; HEVC in MP4/MOV is tagged ``hvc1`` (what Apple players and browsers accept).
* Rotation (display matrix), colour primaries/transfer/matrix/range, sample aspect ratio and
  language/title tags are carried over.
* The temp file is deleted on every failure and on Ctrl-C; ENOSPC becomes an OutputError.

What is written (container, codec, pixel format, colour tags) is decided in
:mod:`vidrestore.io.formats`; the temp file is made by :mod:`vidrestore.io.files`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidrestore.errors import OutputError, ProcessingError, UsageError, one_line
from vidrestore.io import failures
from vidrestore.io.files import commit, is_disk_full, remove_temp
from vidrestore.io.formats import codec_defaults, codec_tag_for, output_colour
from vidrestore.io.probe import ColourInfo
from vidrestore.io.remux import SideStreams
from vidrestore.io.worker import END, Worker

Notes = Callable[[str], None]

# AVColorSpace -> swscale SWS_CS_* (what PyAV's reformat expects), for the YUV<->RGB matrix
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


# muxers that keep sample durations as decode-time deltas (ISO BMFF)
_MOV_FAMILY = frozenset({"mp4", "mov", "ipod", "3gp", "3g2", "ismv", "psp", "f4v"})


@dataclass(frozen=True)
class WriterSpec:
    target: Path
    temp: Path
    format_name: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    rate: Fraction  # nominal output frame rate, exact
    time_base: Fraction  # output video time base: every pts handed to write() is in it
    crf: int | None = None
    preset: str | None = None
    colour: ColourInfo = field(default_factory=ColourInfo)
    full_range_source: bool = False
    rotation: int = 0
    display_matrix: tuple[int, ...] | None = None  # preferred over ``rotation``: keeps flips too
    sample_aspect_ratio: Fraction | None = None
    video_metadata: tuple[tuple[str, str], ...] = ()
    container_metadata: tuple[tuple[str, str], ...] = ()
    source: Path | None = None  # copy audio/subtitle/data streams from here
    source_video_index: int = 0
    threads: int = 0  # encoder threads (vidrestore.threads); 0: the encoder's choice
    overwrite: bool = False  # finish() may replace a file that appeared at the target while running
    variable_rate: bool = False  # the timestamps follow a variable-rate input, not a constant step


class VideoWriter:
    """``start()``, then ``write(frame, pts, duration)`` per output frame, then ``finish()``
    (or ``abort()``). Encoding and muxing happen on a background thread."""

    def __init__(self, spec: WriterSpec, notes: Notes | None = None, queue_size: int = 8,
                 record_packets: bool = False) -> None:
        self.spec = spec
        # (pts, dts, duration) of every video packet as the encoder made it, in ``spec.time_base`` and muxing
        # order, when asked (a chunk of a job: its join gives the final muxer exactly these, see io.join)
        self.packets: list[tuple[int | None, int | None, int]] | None = [] if record_packets else None
        self._note = notes or (lambda msg: None)
        self._worker = Worker(self._run, "writer", queue_size, on_error=self._map_error)
        self._out: Any = None
        self._side = SideStreams(spec.source, spec.source_video_index, spec.format_name, self._add_note)
        self._video: Any = None
        self._durations: dict[int, int] = {}
        self._reformatter: Any = None
        self.frames_written = 0
        self.notes: list[str] = []
        self._closed = False

    # -- setup (caller's thread, so configuration errors surface at once) -----------------------
    def start(self) -> None:
        spec = self.spec
        if spec.codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner to stderr otherwise
        try:
            self._out = av.open(str(spec.temp), mode="w", format=spec.format_name, metadata_errors="replace")
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise OutputError(f"cannot create output {spec.target}: {err}") from None
        try:
            self._setup_video()
            self._side.add_to(self._out)
            self._out.metadata.update(dict(spec.container_metadata))
            try:
                self._out.start_encoding()
            except (av.error.FFmpegError, ValueError) as err:
                if is_disk_full(err):
                    raise OutputError(f"disk full while writing {spec.target}") from None
                what = f"--preset {spec.preset!r} / " if spec.preset else ""
                hint = "; is an NVIDIA GPU with a recent driver present?" if spec.codec.endswith("_nvenc") else ""
                raise UsageError(f"could not start the {spec.codec} encoder ({what}{one_line(err)}){hint}") from None
        except BaseException:
            self._close_quietly()
            raise
        self._reformatter = VideoReformatter()
        self._worker.start()

    def _setup_video(self) -> None:
        spec = self.spec
        stream = self._out.add_stream(spec.codec, rate=spec.rate)
        stream.width = spec.width
        stream.height = spec.height
        stream.pix_fmt = spec.pix_fmt
        stream.time_base = spec.time_base
        tag = codec_tag_for(spec.codec, spec.format_name)
        if tag is not None:
            stream.codec_tag = tag
        cc = stream.codec_context
        if spec.threads:
            cc.thread_count = spec.threads
        cc.time_base = spec.time_base
        cc.framerate = spec.rate
        c = self._output_colour()
        cc.color_primaries = c.primaries
        cc.color_trc = c.transfer
        cc.colorspace = c.matrix
        cc.color_range = c.range
        if spec.sample_aspect_ratio and spec.sample_aspect_ratio != 1:
            cc.sample_aspect_ratio = spec.sample_aspect_ratio
        if spec.display_matrix is not None:
            stream.set_display_matrix(list(spec.display_matrix))
        elif spec.rotation:
            stream.set_display_rotation(spec.rotation)
        defaults = codec_defaults(spec.codec)
        options = dict(defaults.extra)
        if defaults.quality_option:
            q = spec.crf if spec.crf is not None else defaults.quality
            if q is not None:
                options[defaults.quality_option] = str(q)
        elif spec.crf is not None:
            self._add_note(f"{spec.codec} has no quality setting here: --crf ignored"
                           + (" (ffv1 is lossless)" if spec.codec == "ffv1" else ""))
        preset = spec.preset if spec.preset is not None else defaults.preset
        if preset is not None:
            options["preset"] = str(preset)
        if spec.variable_rate and spec.format_name in _MOV_FAMILY:
            # MP4/MOV store durations as decode-time steps: with B-frames reordering irregular steps, the
            # last frames' durations are lost and the file declares itself short. No B-frames there.
            cc.max_b_frames = 0
        cc.options = options
        for k, v in spec.video_metadata:
            stream.metadata[k] = v
        self._video = stream

    def _output_colour(self) -> ColourInfo:
        spec = self.spec
        return output_colour(spec.colour, spec.pix_fmt, spec.full_range_source)

    def _add_note(self, msg: str) -> None:
        self.notes.append(msg)
        self._note(msg)

    # -- producer side (pipeline thread) ---------------------------------------------------------
    def write(self, frame: "np.ndarray | av.VideoFrame", pts: int, duration: int) -> None:
        """Queue one output frame: an HxWx3 RGB array (uint8/uint16), or a decoded frame already
        in the output pixel format; ``pts``/``duration`` in ``spec.time_base``."""
        self._worker.put((frame, int(pts), int(duration)))

    def finish(self) -> Path:
        """Flush everything, close the file and move it onto the target. Returns the target."""
        self._worker.put(END)
        self._worker.join()
        self._worker.check()
        self._closed = True
        # never over a file that appeared at the target while running, unless overwrite (OutputError, exit 4)
        return commit(self.spec.temp, self.spec.target, overwrite=self.spec.overwrite)

    def abort(self) -> None:
        """Stop, close and delete the temp file. Safe to call more than once, and after finish()."""
        if self._closed:
            return
        self._worker.stop()
        self._close_quietly()
        remove_temp(self.spec.temp)
        self._closed = True

    def _close_quietly(self) -> None:
        for c in (self._out, self._side):
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
        self._out = None

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._worker.get()
            if item is None:  # stopped
                return
            if item is END:
                self._flush_and_close()
                return
            frame, pts, duration = item
            self._encode(frame, pts, duration)
            self._side.follow(float((pts + duration) * self.spec.time_base))

    def _map_error(self, err: BaseException) -> BaseException:
        doing = f"encoding failed at output frame {self.frames_written}"
        mapped = failures.typed(err, writing=self.spec.target, doing=doing)
        if mapped is not None:
            return mapped
        if isinstance(err, ValueError):  # PyAV's refusals of a frame or a setting
            return ProcessingError(f"{doing}: {one_line(err)}")
        return err  # a bug: the CLI says so

    def _to_video_frame(self, frame: Any) -> Any:
        spec = self.spec
        if isinstance(frame, np.ndarray):
            h, w = frame.shape[:2]
            if (h, w) != (spec.height, spec.width):  # padded to an even size: repeat the last row/column
                frame = np.pad(frame, ((0, spec.height - h), (0, spec.width - w), (0, 0)), mode="edge")
            fmt = "rgb48le" if frame.dtype == np.uint16 else "rgb24"
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=fmt)
            if spec.pix_fmt != fmt:
                c = self._output_colour()
                vf = self._reformatter.reformat(
                    vf, format=spec.pix_fmt, dst_colorspace=_SWS_MATRIX.get(c.matrix),
                    dst_color_range=c.range or None)
            return vf
        frame.pict_type = 0  # a decoded I-frame must not force a key frame
        return frame

    def _encode(self, frame: Any, pts: int, duration: int) -> None:
        vf = self._to_video_frame(frame)
        vf.pts = pts
        vf.time_base = self.spec.time_base
        vf.duration = duration
        self._durations[pts] = duration
        for packet in self._video.encode(vf):
            self._mux_video(packet)
        self.frames_written += 1

    def _mux_video(self, packet: Any) -> None:
        if packet.pts is not None:
            dur = self._durations.pop(packet.pts, None)
            if dur and not packet.duration:
                packet.duration = dur
        if self.packets is not None:
            self.packets.append((packet.pts, packet.dts, int(packet.duration or 0)))
        self._out.mux(packet)
        if len(self._durations) > 512:  # encoders that drop timestamps: keep the map bounded
            for k in sorted(self._durations)[:-256]:
                del self._durations[k]

    def _flush_and_close(self) -> None:
        for packet in self._video.encode(None):
            self._mux_video(packet)
        self._side.finish()
        self._out.close()
        self._out = None
        self._side.close()

