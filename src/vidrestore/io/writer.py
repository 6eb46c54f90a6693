"""Encode frames on a writer thread into a temp file beside the target, remux the other streams,
and rename to the target only at the very end.

* The video stream gets an exact rational frame rate and a time base in which every output
  timestamp is an integer; pts (and packet durations) are written explicitly.
* Audio, subtitle and data streams of the source are copied packet by packet (timestamps
  rescaled by the muxer) where the container accepts them; audio is re-encoded (AAC, or Opus
  for WebM) only where it must; anything else the container cannot take is dropped with a note.
* Rotation (display matrix), colour primaries/transfer/matrix/range, sample aspect ratio and
  language/title tags are carried over.
* The temp file is deleted on every failure and on Ctrl-C; ENOSPC becomes an OutputError.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import threading
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from vidrestore.errors import InputError, OutputError, ProcessingError, UsageError
from vidrestore.io.probe import ColourInfo, open_input

if TYPE_CHECKING:  # pragma: no cover
    import av

Notes = Callable[[str], None]


@dataclass(frozen=True)
class CodecDefaults:
    quality_option: str | None  # the encoder option --crf maps to
    quality: int | None  # default value for it
    preset: str | None  # default --preset
    extra: tuple[tuple[str, str], ...] = ()
    odd_sizes_with_subsampling: bool = False  # can it encode 4:2:0 with odd width/height?


CODEC_DEFAULTS: dict[str, CodecDefaults] = {
    "libx264": CodecDefaults("crf", 18, "medium"),
    "libx265": CodecDefaults("crf", 20, "medium", (("x265-params", "log-level=error"),)),
    "libsvtav1": CodecDefaults("crf", 30, "8"),
    "ffv1": CodecDefaults(None, None, None, (("level", "3"), ("slicecrc", "1")), odd_sizes_with_subsampling=True),
    "h264_nvenc": CodecDefaults("cq", 19, "p5", (("rc", "vbr"),)),
    "hevc_nvenc": CodecDefaults("cq", 21, "p5", (("rc", "vbr"),)),
    "libvpx-vp9": CodecDefaults("crf", 31, None, (("b", "0"),)),
}
_COPY_META_KEYS = ("language", "title", "handler_name")
_AUDIO_FALLBACKS = ("aac", "libopus", "opus", "flac", "mp3", "libmp3lame")
# AVColorSpace -> swscale SWS_CS_* (what PyAV's reformat expects), for the YUV<->RGB matrix
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_SIDE_LEAD_S = 0.5  # copied packets are fed this far ahead of the last video frame


# ------------------------------------------------------------------------------------------------
# checks before anything is written
# ------------------------------------------------------------------------------------------------


def check_target(target: Path, source: Path, overwrite: bool) -> None:
    """Output path checks: not the input, not existing (unless overwrite), directory writable."""
    target = Path(target)
    try:
        same = target.exists() and source.exists() and os.path.samefile(target, source)
    except OSError:
        same = False
    if same or target.resolve() == Path(source).resolve():
        raise UsageError(f"output is the same file as the input: {target}")
    if target.is_dir():
        raise OutputError(f"output is a directory: {target}")
    if target.exists() and not overwrite:
        raise OutputError(f"output exists: {target} (use --overwrite to replace it)")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise OutputError(f"output directory is not a directory: {parent}")


def container_format_for(target: Path) -> str:
    """The FFmpeg muxer for ``target``'s extension; UsageError for an unknown one."""
    import av

    try:
        c = av.open(str(target), mode="w")  # opens no file until the header is written
    except ValueError:
        raise UsageError(f"unknown output container for {target.name!r}: use .mp4, .mkv, .mov, .webm, ...") from None
    except av.error.FFmpegError as err:
        raise UsageError(f"cannot write a container for {target.name!r}: {err}") from None
    try:
        return c.format.name
    finally:
        c.close()


def check_codec(codec: str, format_name: str) -> None:
    """``codec`` must be a video encoder of the local FFmpeg that ``format_name`` can hold."""
    import av

    try:
        c = av.codec.Codec(codec, "w")
    except Exception:
        raise UsageError(f"unknown codec {codec!r}: not a video encoder in this FFmpeg build "
                         f"(try libx264, libx265, libsvtav1 or ffv1)") from None
    if c.type != "video":
        raise UsageError(f"--codec {codec!r} is a {c.type} encoder, not a video encoder")
    probe_io = io.BytesIO()
    out = av.open(probe_io, mode="w", format=format_name)
    try:
        out.add_stream(codec)
    except ValueError:
        raise UsageError(f"the {format_name} container cannot hold {codec} video; pick another --codec "
                         f"or output extension") from None
    finally:
        out.close()


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")
_NVENC_PRESETS = tuple(f"p{i}" for i in range(1, 8)) + ("default", "slow", "medium", "fast", "hp", "hq", "bd", "ll",
                                                         "llhq", "llhp", "lossless", "losslesshp")
PRESETS: dict[str, tuple[str, ...]] = {
    "libx264": _X26X_PRESETS,
    "libx265": _X26X_PRESETS,
    "libsvtav1": tuple(str(i) for i in range(-2, 14)),
    "h264_nvenc": _NVENC_PRESETS,
    "hevc_nvenc": _NVENC_PRESETS,
}


def check_preset(codec: str, preset: str | None) -> None:
    """Known codecs: --preset must be one of theirs (others are left to the encoder to judge)."""
    if preset is None:
        return
    if codec == "ffv1":
        raise UsageError("--preset: ffv1 has no presets")
    allowed = PRESETS.get(codec)
    if allowed is not None and str(preset) not in allowed:
        raise UsageError(f"--preset {preset!r} is not a {codec} preset: choose from {', '.join(allowed)}")


def _fmt_props(name: str, width: int, height: int) -> dict[str, Any] | None:
    import av

    try:
        f = av.VideoFormat(name)
    except Exception:
        return None
    if f.is_bit_stream or f.has_palette or f.is_bayer or name in ("cuda", "vaapi", "qsv", "d3d11", "videotoolbox_vld"):
        return None
    comps = f.components
    colour_comps = [c for c in comps if not c.is_alpha]
    return {
        "rgb": bool(f.is_rgb),
        "gray": len(colour_comps) == 1,
        "depth": max(c.bits for c in comps) if comps else 8,
        "alpha": any(c.is_alpha for c in comps),
        "sub_w": f.chroma_width(64) < 64 and not f.is_rgb and len(colour_comps) > 1,
        "sub_h": f.chroma_height(64) < 64 and not f.is_rgb and len(colour_comps) > 1,
        "planar": bool(f.is_planar),
        "big_endian": bool(f.is_big_endian),
    }


def normalize_source_format(pix_fmt: str) -> tuple[str, bool]:
    """``yuvj*`` (deprecated full-range formats) -> (``yuv*``, True)."""
    if pix_fmt.startswith("yuvj"):
        return "yuv" + pix_fmt[4:], True
    return pix_fmt, False


def choose_pix_fmt(source_fmt: str, codec: str, width: int, height: int) -> str:
    """The codec's pixel format closest to the source's: the same one where the codec allows,
    else the nearest in family (RGB/YUV/grey), bit depth (never lower if avoidable) and chroma
    subsampling. Odd sizes with chroma subsampling are avoided for codecs that reject them."""
    import av

    source_fmt, _ = normalize_source_format(source_fmt)
    formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])]
    defaults = CODEC_DEFAULTS.get(codec, CodecDefaults(None, None, None))
    src = _fmt_props(source_fmt, width, height) or _fmt_props("yuv420p", width, height)
    assert src is not None
    odd_w, odd_h = width % 2 == 1, height % 2 == 1

    def size_ok(p: dict[str, Any]) -> bool:
        if defaults.odd_sizes_with_subsampling:
            return True
        return not ((odd_w and p["sub_w"]) or (odd_h and p["sub_h"]))

    if not formats:
        return source_fmt
    if source_fmt in formats:
        p = _fmt_props(source_fmt, width, height)
        if p is not None and size_ok(p):
            return source_fmt
    best: tuple[float, int, str] | None = None
    for order, name in enumerate(formats):
        p = _fmt_props(name, width, height)
        if p is None or not size_ok(p):
            continue
        score = 0.0
        score += 100 if p["rgb"] != src["rgb"] else 0
        score += 50 if p["gray"] != src["gray"] else 0
        if p["depth"] < src["depth"]:
            score += 20 + (src["depth"] - p["depth"])
        else:
            score += (p["depth"] - src["depth"]) * 2
        score += 8 * (abs(int(p["sub_w"]) - int(src["sub_w"])) + abs(int(p["sub_h"]) - int(src["sub_h"])))
        score += 3 if p["alpha"] != src["alpha"] else 0
        score += 0.5 if not p["planar"] else 0
        score += 1 if p["big_endian"] else 0
        if best is None or (score, order) < best[:2]:
            best = (score, order, name)
    if best is None:
        raise UsageError(f"{codec} cannot encode a {width}x{height} frame (odd sizes need a codec "
                         f"without chroma subsampling limits, e.g. --codec libx264 or ffv1)")
    return best[2]


def temp_path_for(target: Path) -> Path:
    """A hidden file beside ``target`` with the same extension (so the muxer is the same)."""
    return target.with_name(f".{target.stem}.vidrestore-{uuid.uuid4().hex[:8]}.partial{target.suffix}")


def create_temp(target: Path) -> Path:
    """Create the temp file now, so an unwritable directory fails before any work is done."""
    tmp = temp_path_for(target)
    try:
        with open(tmp, "xb"):
            pass
    except OSError as err:
        raise OutputError(f"cannot write to {target.parent or '.'}: {err.strerror or err}") from None
    return tmp


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and getattr(err, "errno", None) in _DISK_FULL


# ------------------------------------------------------------------------------------------------
# the writer
# ------------------------------------------------------------------------------------------------


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


@dataclass
class _SideStream:
    src: Any
    out: Any
    reencode: bool


class VideoWriter:
    """``start()``, then ``write(frame, pts, duration)`` per output frame, then ``finish()``
    (or ``abort()``). Encoding and muxing happen on a background thread."""

    def __init__(self, spec: WriterSpec, notes: Notes | None = None, queue_size: int = 8) -> None:
        self.spec = spec
        self._note = notes or (lambda msg: None)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._out: Any = None
        self._src: Any = None
        self._video: Any = None
        self._side: dict[int, _SideStream] = {}
        self._side_iter: Any = None
        self._held_packet: Any = None
        self._durations: dict[int, int] = {}
        self._reformatter: Any = None
        self.frames_written = 0
        self.notes: list[str] = []
        self._closed = False

    # -- setup (caller's thread, so configuration errors surface at once) -----------------------
    def start(self) -> None:
        import av

        spec = self.spec
        if spec.codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner to stderr otherwise
        try:
            self._out = av.open(str(spec.temp), mode="w", format=spec.format_name, metadata_errors="replace")
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise OutputError(f"cannot create output {spec.target}: {err}") from None
        try:
            self._setup_video()
            self._setup_side_streams()
            self._out.metadata.update(dict(spec.container_metadata))
            try:
                self._out.start_encoding()
            except (av.error.FFmpegError, ValueError) as err:
                if is_disk_full(err):
                    raise OutputError(f"disk full while writing {spec.target}") from None
                what = f"--preset {spec.preset!r} / " if spec.preset else ""
                hint = "; is an NVIDIA GPU with a recent driver present?" if spec.codec.endswith("_nvenc") else ""
                raise UsageError(f"could not start the {spec.codec} encoder ({what}{_one_line(err)}){hint}") from None
        except BaseException:
            self._close_quietly()
            raise
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()
        self._thread = threading.Thread(target=self._run, name="vidrestore-writer", daemon=True)
        self._thread.start()

    def _setup_video(self) -> None:
        spec = self.spec
        stream = self._out.add_stream(spec.codec, rate=spec.rate)
        stream.width = spec.width
        stream.height = spec.height
        stream.pix_fmt = spec.pix_fmt
        stream.time_base = spec.time_base
        cc = stream.codec_context
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
        defaults = CODEC_DEFAULTS.get(spec.codec, CodecDefaults(None, None, None))
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
        cc.options = options
        for k, v in spec.video_metadata:
            stream.metadata[k] = v
        self._video = stream

    def _output_colour(self) -> ColourInfo:
        """Colour tags of the output and, through them, the RGB->YUV matrix and range used."""
        spec = self.spec
        c = spec.colour
        out_rgb = (_fmt_props(spec.pix_fmt, spec.width, spec.height) or {}).get("rgb", False)
        rng = 2 if spec.full_range_source else c.range
        if out_rgb:
            return ColourInfo(c.primaries, c.transfer, 0, rng if rng else 2)
        if c.matrix == 0:  # RGB source into a YUV format: tag (and convert with) BT.709, limited
            return ColourInfo(c.primaries, c.transfer, 1, 1)
        return ColourInfo(c.primaries, c.transfer, c.matrix, rng)

    def _setup_side_streams(self) -> None:
        spec = self.spec
        if spec.source is None:
            return
        try:
            self._src = open_input(spec.source)
        except InputError:
            return
        for s in self._src.streams:
            if s.index == spec.source_video_index:
                continue
            kind = s.type
            label = f"{kind} stream #{s.index}" + (f" ({s.codec_context.name})" if s.codec_context is not None else "")
            if kind == "video":
                self._add_note(f"dropped extra {label}: only the main video stream is processed")
                continue
            if kind not in ("audio", "subtitle", "data", "attachment"):
                self._add_note(f"dropped {label}: unknown stream type")
                continue
            if self._accepts_copy(s):
                out = self._out.add_stream_from_template(s)
                self._copy_stream_tags(s, out)
                self._side[s.index] = _SideStream(s, out, reencode=False)
                continue
            if kind == "audio":
                out = self._audio_encoder_for(s)
                if out is not None:
                    self._copy_stream_tags(s, out)
                    self._side[s.index] = _SideStream(s, out, reencode=True)
                    self._add_note(f"re-encoded {label} to {out.codec_context.name}: "
                                   f"the {spec.format_name} container cannot hold it as is")
                    continue
            self._add_note(f"dropped {label}: the {spec.format_name} container cannot hold it")
        if self._side:
            self._side_iter = iter(self._src.demux(*[self._src.streams[i] for i in self._side]))
        else:
            self._src.close()
            self._src = None

    def _accepts_copy(self, s: Any) -> bool:
        """Can the output container take stream ``s`` copied as is? Tried on a scratch muxer in
        memory: header, then (for data streams, which muxers often reject only then) the stream's
        first packet, then the trailer."""
        import av

        scratch = av.open(io.BytesIO(), mode="w", format=self.spec.format_name)
        try:
            out = scratch.add_stream_from_template(s)
            scratch.start_encoding()
            if s.type == "data":
                packet = self._first_packet(s.index)
                if packet is not None:
                    packet.stream = out
                    scratch.mux(packet)
            scratch.close()
            return True
        except (ValueError, av.error.FFmpegError, NotImplementedError, TypeError):
            return False
        finally:
            try:
                scratch.close()
            except Exception:
                pass

    def _first_packet(self, index: int, limit: int = 2000) -> Any:
        """The first non-empty packet of stream ``index`` among the source's first ``limit``."""
        import av

        assert self.spec.source is not None
        try:
            with av.open(str(self.spec.source)) as c:
                for n, packet in enumerate(c.demux()):
                    if n >= limit:
                        return None
                    if packet.stream.index == index and packet.size:
                        return packet
        except av.error.FFmpegError:
            return None
        return None

    def _audio_encoder_for(self, s: Any) -> Any:
        import av

        cc = s.codec_context
        for name in _AUDIO_FALLBACKS:
            try:
                codec = av.codec.Codec(name, "w")
            except Exception:
                continue
            rates = list(codec.audio_rates or [])
            rate = cc.sample_rate if not rates or cc.sample_rate in rates else (48000 if 48000 in rates else rates[-1])
            try:
                out = self._out.add_stream(name, rate=rate)
            except ValueError:
                continue
            try:
                out.layout = cc.layout.name if cc.layout.nb_channels <= 2 or name == "aac" else "stereo"
            except Exception:
                out.layout = "stereo"
            if name == "aac":
                out.codec_context.bit_rate = 192000
            return out
        return None

    @staticmethod
    def _copy_stream_tags(src: Any, out: Any) -> None:
        for k in _COPY_META_KEYS:
            v = src.metadata.get(k)
            if v:
                out.metadata[k] = v
        try:
            out.disposition = src.disposition
        except Exception:
            pass

    def _add_note(self, msg: str) -> None:
        self.notes.append(msg)
        self._note(msg)

    # -- producer side (pipeline thread) ---------------------------------------------------------
    def write(self, frame: "np.ndarray | av.VideoFrame", pts: int, duration: int) -> None:
        """Queue one output frame: an HxWx3 RGB array (uint8/uint16), or a decoded frame already
        in the output pixel format; ``pts``/``duration`` in ``spec.time_base``."""
        self._put(("frame", frame, int(pts), int(duration)))

    def finish(self) -> Path:
        """Flush everything, close the file and move it onto the target. Returns the target."""
        self._put(("end",))
        self._join()
        if self._error is not None:
            raise self._error
        self._closed = True
        try:
            os.replace(self.spec.temp, self.spec.target)
        except OSError as err:
            self._remove_temp()
            raise OutputError(f"cannot move the finished file onto {self.spec.target}: {err.strerror or err}") from None
        return self.spec.target

    def abort(self) -> None:
        """Stop, close and delete the temp file. Safe to call more than once, and after finish()."""
        if self._closed:
            return
        self._stop.set()
        self._join()
        self._close_quietly()
        self._remove_temp()
        self._closed = True

    def _put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if self._thread is None or not self._thread.is_alive():
                raise self._error or ProcessingError("the writer stopped unexpectedly")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _join(self) -> None:
        if self._thread is None:
            return
        while self._thread.is_alive():
            if self._stop.is_set():
                try:
                    while True:
                        self._queue.get_nowait()
                except queue.Empty:
                    pass
            self._thread.join(timeout=0.05)

    def _remove_temp(self) -> None:
        try:
            os.unlink(self.spec.temp)
        except FileNotFoundError:
            pass
        except OSError:
            pass

    def _close_quietly(self) -> None:
        for c in (self._out, self._src):
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
        self._out = self._src = None

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                if self._stop.is_set():
                    return
                if item[0] == "end":
                    self._flush_and_close()
                    return
                _, frame, pts, duration = item
                self._encode(frame, pts, duration)
                self._pump_side(until_s=float((pts + duration) * self.spec.time_base) + _SIDE_LEAD_S)
        except BaseException as err:  # handed to the pipeline thread
            self._error = self._map_error(err)
            self._stop.set()

    def _map_error(self, err: BaseException) -> BaseException:
        if isinstance(err, (OutputError, ProcessingError, UsageError, InputError)):
            return err
        if is_disk_full(err):
            return OutputError(f"disk full while writing {self.spec.target}")
        if isinstance(err, OSError) and getattr(err, "errno", None) in (errno.EIO, errno.EACCES, errno.EROFS,
                                                                         errno.EPERM):
            return OutputError(f"cannot write {self.spec.target}: {_one_line(err)}")
        return ProcessingError(f"encoding failed at output frame {self.frames_written}: {_one_line(err)}")

    def _to_video_frame(self, frame: Any) -> Any:
        import av

        spec = self.spec
        if isinstance(frame, np.ndarray):
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
        self._out.mux(packet)
        if len(self._durations) > 512:  # encoders that drop timestamps: keep the map bounded
            for k in sorted(self._durations)[:-256]:
                del self._durations[k]

    def _pump_side(self, until_s: float | None) -> None:
        """Mux copied/re-encoded packets up to ``until_s`` seconds (all of them when None)."""
        if self._side_iter is None:
            return
        import av

        while True:
            packet = self._held_packet
            self._held_packet = None
            if packet is None:
                try:
                    packet = next(self._side_iter)
                except StopIteration:
                    self._side_iter = None
                    break
                except av.error.FFmpegError:
                    self._side_iter = None  # damaged tail of a side stream: keep what we have
                    break
            side = self._side.get(packet.stream.index)
            if side is None:
                continue
            if packet.dts is None and packet.pts is None and packet.size == 0:
                if side.reencode:
                    self._encode_audio(side, None)
                continue
            ts = packet.dts if packet.dts is not None else packet.pts
            if until_s is not None and ts is not None and packet.time_base is not None \
                    and float(ts * packet.time_base) > until_s:
                self._held_packet = packet
                return
            if side.reencode:
                self._encode_audio(side, packet)
            else:
                packet.stream = side.out
                self._out.mux(packet)
        for side in self._side.values():
            if side.reencode:
                for p in side.out.encode(None):
                    self._out.mux(p)

    def _encode_audio(self, side: _SideStream, packet: Any) -> None:
        frames = side.src.codec_context.decode(packet) if packet is not None else side.src.codec_context.decode(None)
        for frame in frames:
            for p in side.out.encode(frame):
                self._out.mux(p)

    def _flush_and_close(self) -> None:
        for packet in self._video.encode(None):
            self._mux_video(packet)
        self._pump_side(until_s=None)
        self._out.close()
        self._out = None
        if self._src is not None:
            self._src.close()
            self._src = None


def _one_line(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())
