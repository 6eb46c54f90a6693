"""Open an input video and describe it: streams, size, frame rate, frame count, duration.

``open_input`` turns every way an input can fail to open into one clear :class:`InputError`.
``probe`` reads only container metadata and (optionally) scans the video packets without
decoding them, which gives the exact frame count, the duration and whether the frame rate is
constant, at the cost of one pass over the file's bytes. The scan also finds a truncated file whose
index survived (an MP4 with its index at the front, cut short while copying): the index lists more
frames than the file holds, and the packets run out, or break off, at the end of the file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av
import av.container
from av.video import reformatter

from vidrestore.config import format_rate
from vidrestore.errors import InputError, one_line


@dataclass(frozen=True)
class ColourInfo:
    """FFmpeg's enum values (AVColorPrimaries, AVColorTransferCharacteristic, AVColorSpace,
    AVColorRange); 2 / 0 mean unspecified."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0

    def describe(self) -> str:
        names = {
            "primaries": _enum_name("ColorPrimaries", self.primaries),
            "transfer": _enum_name("ColorTrc", self.transfer),
            "matrix": _COLORSPACE_NAMES.get(self.matrix, str(self.matrix)),
            "range": {0: "unspecified", 1: "limited", 2: "full"}.get(self.range, str(self.range)),
        }
        return ", ".join(f"{k} {v}" for k, v in names.items())


_COLORSPACE_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                     7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}


_MUXER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands"}


def _enum_name(enum: str, value: int) -> str:
    try:
        return getattr(reformatter, enum)(value).name.lower()
    except Exception:
        return str(value)


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str  # video | audio | subtitle | data | attachment | unknown
    codec: str | None
    language: str | None = None
    title: str | None = None
    detail: str = ""  # one human line: "1280x720 yuv420p 30000/1001 fps", "48000 Hz stereo fltp", ...


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    container: str
    size_bytes: int
    video_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    rate: Fraction  # frames per second, exact
    time_base: Fraction
    frame_count: int  # exact when ``frame_count_exact`` else an estimate (duration x rate)
    frame_count_exact: bool
    duration: float | None  # seconds of the video stream
    start_time: float  # seconds
    cfr: bool | None  # constant frame rate; None when not scanned
    rotation: int  # degrees counter-clockwise from the display matrix, 0 if none
    display_matrix: tuple[int, ...] | None  # the 9 int32 values (rotation and flips), None if none
    colour: ColourInfo
    sample_aspect_ratio: Fraction | None
    container_duration: float | None
    streams: tuple[StreamInfo, ...] = field(default_factory=tuple)
    video_tags: tuple[tuple[str, str], ...] = ()  # language, title, handler_name of the video stream
    container_tags: tuple[tuple[str, str], ...] = ()  # title, creation_time, ... (not muxer bookkeeping)
    index_frames: int = 0  # video frames the container's index lists (0: no index count)
    truncated: bool = False  # scanned: the file ends before the frames its index lists (frame_count: complete ones)
    # scanned, without an index count: the header's duration (s) when the packets end well before it (a
    # Matroska/WebM file cut short, or damaged where they stop); else None
    short_of: float | None = None
    # with short_of: the byte where the packets stop when that is well before the end of the file (damage
    # in the middle that the demuxer cannot get past, not a file cut short); else None
    stops_at_byte: int | None = None
    # scanned: the first error FFmpeg's Matroska demuxer reported while the file was opened and its packets read,
    # in a file with no duration to check its frames against (broken structure: what was skipped is unknown)
    broken_structure: str | None = None
    # scanned: the places on the frame grid (the shortest step between timestamps) that the timestamps skip;
    # in an AVI these are its drop chunks (the previous frame stays on screen), which its index counts
    skipped_slots: int = 0
    # scanned: frames the index lists that are not in the file, though it was not cut short (gone from within)
    missing_frames: int = 0
    # scanned: frames in an AVI beyond those its index lists (repeated or added data)
    surplus_frames: int = 0

    @property
    def frames_to_decode(self) -> int:
        """The frames a whole decode must give (0: no index count): the index's count, less an AVI's drop chunks
        (zero-byte slots its timestamps skip, which hold no frame). The one completeness rule: the reader
        checks what it decoded against it, with the probe's ``missing_frames`` and ``surplus_frames``."""
        scanned = self.frame_count if self.frame_count_exact else 0
        return scanned if 0 < scanned < self.index_frames and not self.missing_frames else self.index_frames

    def truncation(self) -> str | None:
        """One line on a truncated file, or None."""
        if self.truncated:
            return (f"{self.path} is truncated: its index lists {self.index_frames} video frames but the file "
                    f"({self.size_bytes} bytes) ends after {self.frame_count} of them")
        if self.short_of is not None and self.stops_at_byte is not None:
            return (f"{self.path} is damaged: its header says {self.short_of:.2f} s but its packets stop after "
                    f"{self.frame_count} frames, at byte {self.stops_at_byte} of {self.size_bytes}, and what "
                    "follows cannot be read")
        if self.broken_structure is not None:
            return (f"{self.path} is damaged: its structure is broken where FFmpeg reads it "
                    f"({self.broken_structure}), and it has no duration to tell which frames are missing")
        if self.stops_at_byte is not None:
            return (f"{self.path} is damaged: its packets stop after {self.frame_count} frames, at byte "
                    f"{self.stops_at_byte} of {self.size_bytes}, and what follows cannot be read")
        if self.short_of is not None:
            return (f"{self.path} is truncated: its header says {self.short_of:.2f} s but the file "
                    f"({self.size_bytes} bytes) ends after {self.frame_count} frames")
        return None

    def damage(self) -> str | None:
        """One line on frames missing from within the file (not a truncation), or None."""
        if self.missing_frames:
            return (f"{self.path} is damaged: its index lists {self.index_frames} video frames but "
                    f"{self.missing_frames} of them are not in the file")
        if self.surplus_frames:
            return (f"{self.path} is damaged: its index lists {self.index_frames} video frames but the file holds "
                    f"{self.index_frames + self.surplus_frames} (repeated or added data)")
        return None

    def to_json_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["damaged"] = bool(self.missing_frames or self.surplus_frames or self.stops_at_byte is not None
                             or self.broken_structure is not None)
        d["path"] = str(self.path)
        d["rate"] = f"{self.rate.numerator}/{self.rate.denominator}"
        d["time_base"] = f"{self.time_base.numerator}/{self.time_base.denominator}"
        sar = self.sample_aspect_ratio
        d["sample_aspect_ratio"] = None if sar is None else f"{sar.numerator}:{sar.denominator}"
        d["rate_float"] = float(self.rate)
        return d


def check_readable(path: Path) -> None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"input not found: {path}") from None
    except OSError as err:  # a folder on the way that cannot be entered, a dead mount, ...
        raise InputError(f"cannot read input {path}: {one_line(err)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"input is a directory, not a video file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input is not readable (permission denied): {path}")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as err:
        raise InputError(f"cannot read input {path}: {err.strerror or err}") from None


# how far the packets may end before a container's declared duration without the file counting as cut short:
# the longest audio or video packet (a container such as Matroska need not store the last one's duration, and
# an encoder's padding is trimmed from the last audio packet), plus two timestamps' rounding at Matroska's 1 ms
TIMESTAMP_PRECISION_S = 0.001
# bytes after the last packet that still count as the container's trailer (Matroska's cues and tags) when
# the packets stop short of the header's duration: more, and the file is damaged there rather than cut short
TRAILER_SLACK_BYTES = 4096
TRAILER_SLACK_FRACTION = 0.01
# ... and in a Matroska file without a duration: bytes after the packets that are more than both of these
TRAILER_MIN_BYTES = 256
TRAILER_MAX_SHARE = 0.2


class PacketReach:
    """How far the demuxed packets of a file reach (seconds: the end of the latest one) and the tail slack that
    justifies: the longest audio packet (an encoder's padding is trimmed from the last one, and a muxer may
    count it), the video's frame interval where a video packet came without its duration (Matroska need not
    store it), and the rounding of two timestamps at Matroska's 1 ms."""

    def __init__(self, video_rate: Fraction | None = None) -> None:
        self.end = 0.0
        self.video_step = float(1 / video_rate) if video_rate else 0.0  # a video packet without a duration
        self.audio_step = 0.0
        self.video_without_duration = False

    def add(self, packet: "av.Packet") -> None:
        if packet.pts is None or packet.time_base is None or packet.size == 0:
            return
        tb = packet.time_base
        self.end = max(self.end, float((packet.pts + (packet.duration or 0)) * tb))
        kind = packet.stream.type
        if kind == "audio" and packet.duration:
            self.audio_step = max(self.audio_step, float(packet.duration * tb))
        elif kind == "video" and not packet.duration:
            self.video_without_duration = True

    @property
    def slack(self) -> float:
        return (max(self.audio_step, self.video_step if self.video_without_duration else 0.0)
                + 2 * TIMESTAMP_PRECISION_S)

    def short_of(self, container_duration: float | None, start: float) -> bool:
        """The packets stop before the container's declared duration by more than the slack."""
        if not container_duration or self.end <= 0:
            return False
        return self.end - start < container_duration - self.slack


def _missing_within(container: str, declared: int, scanned: int, skipped: int, truncated: bool) -> int:
    """Frames the index lists that the packets do not hold, in a file not cut short; an AVI's drop chunks
    (zero-byte slots its timestamps skip) are not missing."""
    if truncated or not 0 < scanned < declared:
        return 0
    if "avi" in container.split(",") and declared - scanned == skipped:
        return 0
    return declared - scanned


def check_complete(info: VideoInfo) -> None:
    """InputError (one line) for a truncated file (``info`` from a scanning ``probe``)."""
    message = info.truncation()
    if message:
        raise InputError(f"{message}; copy or download it again")


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open ``path`` for demuxing; InputError (one line) for missing, unreadable or non-video files."""
    p = Path(path)
    check_readable(p)
    if p.stat().st_size == 0:
        raise InputError(f"input is an empty file: {p}")
    try:
        container = av.open(str(p), mode="r", metadata_errors="replace")
    except av.error.FFmpegError as err:
        raise InputError(f"not a readable video file: {p} ({_short(err)})") from None
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"cannot open input {p}: {err}") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise InputError(f"no video stream in {p} (found: {', '.join(kinds)})")
    fmt = container.format.name or ""
    codecs = {s.codec_context.name for s in container.streams.video if s.codec_context is not None}
    if set(fmt.split(",")) & TEXT_DEMUXERS or (codecs and codecs <= TEXT_CODECS):
        container.close()
        raise InputError(f"not a video file: {p} (FFmpeg would draw it as text: {fmt})")
    if p.suffix.lower() in CONTAINER_SUFFIXES and set(fmt.split(",")) <= RAW_STREAM_DEMUXERS:
        container.close()
        raise InputError(f"{p} is damaged: its {p.suffix.lower()[1:].upper()} structure cannot be read, only a raw "
                         f"{fmt} stream, so which frames it held and when is unknown")
    return container


# FFmpeg demuxers and codecs that draw text or binary data as pictures (ANSI art, XBIN, ...): any file may be
# "read" by them, a README as well as a video
TEXT_DEMUXERS = {"tty", "bin", "xbin", "adf", "idf"}
TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}


# a file named as a container (the name is its promise of frame times and an index) that FFmpeg can read only as
# a bare stream of frames or images has lost that structure: damaged, not a video to guess at. (A valid file of
# another container than its name says still opens: only the bare-stream demuxers count.)
CONTAINER_SUFFIXES = {".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".ts", ".m2ts", ".mts", ".flv", ".ogv",
                      ".mxf", ".wmv", ".asf", ".3gp", ".nut"}
RAW_STREAM_DEMUXERS = {"mjpeg", "jpeg_pipe", "mpjpeg", "h264", "hevc", "vvc", "mpegvideo", "m4v", "h261", "h263",
                       "cavsvideo", "vc1", "dirac", "rawvideo", "image2", "image2pipe", "png_pipe", "bmp_pipe",
                       "gif", "gif_pipe", "webp_pipe", "tiff_pipe", "dpx_pipe", "exr_pipe", "j2k_pipe", "obu"}


def _short(err: BaseException) -> str:
    msg = getattr(err, "strerror", None) or str(err)
    return str(msg).split(":")[0].strip() or type(err).__name__


def main_video_stream(container: av.container.InputContainer):
    """The video stream to process: the first that is not a cover picture, preferring one that this
    FFmpeg can decode (a stream of an unknown codec has no codec context)."""
    pictures = [s for s in container.streams.video
                if not (int(s.disposition) & int(getattr(type(s.disposition), "attached_pic", 0) or 0))]
    candidates = pictures or list(container.streams.video)
    return next((s for s in candidates if s.codec_context is not None), candidates[0])


def check_picture(info: VideoInfo) -> None:
    """InputError (one line) for a video without a picture size (0x0: nothing to decode into)."""
    if info.width <= 0 or info.height <= 0:
        raise InputError(f"{info.path} has no picture size ({info.width}x{info.height}) in video stream "
                         f"#{info.video_index}: the file is damaged or its codec is not supported")


def pix_fmt_depth(pix_fmt: str) -> int:
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except Exception:
        return 8


def stream_rate(stream) -> Fraction:
    """The exact nominal frame rate of a video stream (r_frame_rate, else avg, else guessed). FFmpeg's
    r_frame_rate is the lowest rate that represents every timestamp: for a variable-rate stream in a fine
    time base it can be the time base itself (90000 for 1/90000), so where it is more than twice the
    average rate, the average is the stream's rate."""
    base = getattr(stream, "base_rate", None)
    average = stream.average_rate
    if base and average and average > 0 and base > 2 * average:
        base = None
    for rate in (base, average, getattr(stream, "guessed_rate", None)):
        if rate and rate > 0:
            return Fraction(rate)
    return Fraction(25, 1)


def _stream_info(s) -> StreamInfo:
    cc = s.codec_context
    codec = _codec_name(cc) if cc is not None else None
    detail = ""
    try:
        if s.type == "video" and cc is not None:
            detail = f"{cc.width}x{cc.height} {cc.pix_fmt or '?'} {format_rate(stream_rate(s))} fps"
        elif s.type == "audio" and cc is not None:
            layout = getattr(getattr(cc, "layout", None), "name", "?")
            fmt = getattr(getattr(cc, "format", None), "name", "?")
            detail = f"{cc.sample_rate} Hz {layout} {fmt}"
        elif s.type == "data":
            tc = s.metadata.get("timecode")
            detail = f"timecode {tc}" if tc else "data"
        elif s.type == "attachment":
            detail = " ".join(x for x in (s.metadata.get("filename"), s.metadata.get("mimetype")) if x)
        elif cc is None:
            detail = "no decoder in this FFmpeg"
    except Exception:
        detail = ""
    title = s.metadata.get("title")
    lang = s.metadata.get("language")
    return StreamInfo(index=s.index, type=s.type, codec=codec, language=lang, title=title, detail=detail)


def _codec_name(cc) -> str:
    """The format's name (``av1``), not the decoder's (``libdav1d``)."""
    try:
        return cc.codec.canonical_name or cc.name
    except Exception:
        return cc.name


@dataclass
class _PacketScan:
    """What reading every packet (not decoding) found: the video stream's timestamps, whole packets and last
    duration; where the packets of any stream ended and reached; whether the file's end cut one off."""

    reach: PacketReach
    pts: list[int] = field(default_factory=list)
    last_duration: int = 0
    complete: int = 0  # whole video packets
    last_end: int = -1  # the end of the last packet of any stream (bytes)
    broken: bool = False  # a packet of any stream cut off by the end of the file


@contextlib.contextmanager
def _demuxer_errors() -> Iterator[list[str]]:
    """FFmpeg's error lines while a file is opened or its packets read: demuxing only, no decoder runs (a
    frame-threaded decoder logging through Python can deadlock: see :func:`vidrestore.io.logs.quiet_ffmpeg`)."""
    import av.logging

    found: list[str] = []
    old = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(True) as logs:
            yield found
            found += [str(m).strip() for level, _, m in logs if level <= av.logging.ERROR]
    finally:
        av.logging.set_level(old)


def _scan_packets(container: av.container.InputContainer, video_index: int, size: int,
                  rate: Fraction) -> _PacketScan:
    sc = _PacketScan(PacketReach(rate))
    try:
        for packet in container.demux():  # every stream: in an interleaved file the audio may end it
            if packet.size == 0:
                continue
            sc.reach.add(packet)
            pos = packet.pos if packet.pos is not None else -1
            end = pos + packet.size
            if pos >= 0 and (end > size or (end == size and packet.is_corrupt)):
                sc.broken = True  # cut off by the end of the file: not counted, it cannot be decoded whole
                continue
            sc.last_end = max(sc.last_end, end) if pos >= 0 else sc.last_end
            if packet.stream.index != video_index:
                continue
            if packet.pts is not None:
                sc.pts.append(packet.pts)
            sc.last_duration = packet.duration or sc.last_duration
            sc.complete += 1
    except av.error.FFmpegError:
        pass  # a damaged tail: report what could be read; enhance reports the exact frame
    return sc


def _short_tail(container: av.container.InputContainer, sc: _PacketScan, size: int,
                cont_duration: float | None) -> tuple[float | None, int | None]:
    """For a file without an index count: (the header's duration when the packets end well before it, the byte
    where they stop when that is far before the file's end: damage, not a file cut short)."""
    first = container.start_time / 1e6 if container.start_time else 0.0
    trailing = size - sc.last_end
    if sc.reach.short_of(cont_duration, first):
        far = not sc.broken and trailing > max(TRAILER_SLACK_BYTES, TRAILER_SLACK_FRACTION * size)
        return cont_duration, (sc.last_end if far else None)
    if (cont_duration is None and "matroska" in container.format.name.split(",") and not sc.broken
            and sc.last_end > 0 and trailing > max(TRAILER_MIN_BYTES, TRAILER_MAX_SHARE * size)):
        # no duration to compare with (damaged too): what follows the packets is far more than a Matroska
        # file's index and tags
        return None, sc.last_end
    return None, None


def probe(path: str | os.PathLike[str], scan: bool = True) -> VideoInfo:
    """Describe ``path``. With ``scan`` the video packets are read (not decoded) for the exact frame
    count, duration and CFR/VFR; without it only header values are used (count may be estimated)."""
    p = Path(path)
    with _demuxer_errors() as opening:
        container = open_input(p)
    try:
        v = main_video_stream(container)
        cc = v.codec_context
        if cc is None:
            raise InputError(f"cannot decode video stream #{v.index} of {p}: its codec is unknown to this FFmpeg build")
        tb = Fraction(v.time_base) if v.time_base else Fraction(1, 90000)
        rate = stream_rate(v)
        start = float(v.start_time * tb) if v.start_time is not None else 0.0
        declared = int(v.frames or 0)
        duration = float(v.duration * tb) if v.duration else None
        cont_duration = container.duration / 1e6 if container.duration else None
        count, exact, cfr = declared, declared > 0, None
        truncated = False
        short_of = stops_at_byte = broken = None
        skipped = 0
        if scan:
            size = p.stat().st_size
            with _demuxer_errors() as scanning:
                sc = _scan_packets(container, v.index, size, rate)
            errors = [*opening, *scanning]
            if errors and cont_duration is None and "matroska" in container.format.name.split(","):
                broken = errors[0][:120]
            # the index lists frames the packets did not deliver, and they ran out at the end of the file
            truncated = declared > sc.complete and (sc.broken or sc.last_end >= size)
            if not declared:  # the same rule as the reader's at the end of a run, here before it starts
                short_of, stops_at_byte = _short_tail(container, sc, size, cont_duration)
            if sc.pts:
                count, exact = len(sc.pts), True
                pts_list = sorted(sc.pts)
                deltas = [b - a for a, b in zip(pts_list, pts_list[1:])]
                last_dur = sc.last_duration
                if deltas:
                    cfr = max(deltas) - min(deltas) <= 1
                    step = min(deltas)
                    if step > 0:
                        skipped = sum(max(0, round(d / step) - 1) for d in deltas)
                    last_dur = last_dur or round(sum(deltas) / len(deltas))
                duration = float((pts_list[-1] + last_dur - pts_list[0]) * tb)
                start = float(pts_list[0] * tb)
            elif count == 0:
                exact = False
        if not exact and count == 0:
            d = duration or cont_duration
            count = int(round(d * rate)) if d else 0
        if duration is None and exact and count:
            duration = float(count / rate)
        rotation, display_matrix = _first_frame_display(p, v.index)
        colour = ColourInfo(primaries=int(cc.color_primaries), transfer=int(cc.color_trc),
                            matrix=int(cc.colorspace), range=int(cc.color_range))
        sar = v.sample_aspect_ratio
        return VideoInfo(
            path=p, container=container.format.name, size_bytes=p.stat().st_size, video_index=v.index,
            codec=_codec_name(cc), width=cc.width, height=cc.height, pix_fmt=cc.pix_fmt or "unknown",
            bit_depth=pix_fmt_depth(cc.pix_fmt) if cc.pix_fmt else 8, rate=rate, time_base=tb,
            frame_count=count, frame_count_exact=exact, duration=duration, start_time=start, cfr=cfr,
            rotation=rotation, display_matrix=display_matrix, colour=colour,
            sample_aspect_ratio=Fraction(sar) if sar else None,
            container_duration=cont_duration, streams=tuple(_stream_info(s) for s in container.streams),
            video_tags=tuple((k, v.metadata[k]) for k in ("language", "title", "handler_name") if v.metadata.get(k)),
            container_tags=tuple((k, val) for k, val in container.metadata.items() if k.lower() not in _MUXER_TAGS),
            index_frames=declared, truncated=bool(truncated), short_of=short_of, skipped_slots=skipped,
            missing_frames=_missing_within(container.format.name, declared, count if exact else 0, skipped, truncated),
            surplus_frames=(count - declared if exact and 0 < declared < count
                            and "avi" in container.format.name.split(",") else 0),
            stops_at_byte=stops_at_byte, broken_structure=broken,
        )
    finally:
        container.close()


def _first_frame_display(path: Path, index: int) -> tuple[int, tuple[int, ...] | None]:
    """(rotation in degrees, the raw 3x3 display matrix) from the first decoded frame: FFmpeg
    exports the container's display matrix as frame side data; PyAV has no stream-level getter."""
    try:
        with av.open(str(path)) as c:
            for frame in c.decode(c.streams[index]):
                return int(round(frame.rotation or 0)), _display_matrix(frame)
    except Exception:
        return 0, None
    return 0, None


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix side data as 9 int32 values. Iterating ``frame.side_data`` gives the
    entries up to PyAV 18.1.0 and their types (keys of a mapping) from 18.1.1: both are read."""
    try:
        for entry in frame.side_data:
            sd = entry if hasattr(entry, "type") else frame.side_data[entry]
            if getattr(sd.type, "name", "") == "DISPLAYMATRIX":
                raw = bytes(sd)
                if len(raw) == 36:
                    return tuple(int(x) for x in memoryview(raw).cast("i"))
    except Exception:
        return None
    return None
