"""The source's other streams in the output: audio, subtitle and data streams copied packet by
packet (timestamps rescaled by the muxer) where the container accepts them, audio re-encoded
(AAC, or Opus for WebM) only where it must, text subtitles converted to the container's text
format where it takes no other (SRT/ASS to ``mov_text`` in MP4/MOV, to WebVTT in WebM), a
timecode data stream kept as the output's timecode (a ``tmcd`` track in MP4/MOV, a TIMECODE tag
elsewhere), anything else dropped with a note that says why; language/title tags and
dispositions carried over. The writer's thread calls :meth:`SideStreams.follow` after
each video frame, so the copied packets stay interleaved with the video.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import av

from vidrestore.errors import InputError
from vidrestore.io.probe import open_input

_COPY_META_KEYS = ("language", "title", "handler_name")
_AUDIO_FALLBACKS = ("aac", "libopus", "opus", "flac", "mp3", "libmp3lame")
_LEAD_S = 0.5  # copied packets are fed this far ahead of the last video frame
# the text subtitle format of containers that take no other (FFmpeg encoder names)
_TEXT_SUBTITLE_FORMAT = {"mp4": "mov_text", "mov": "mov_text", "ipod": "mov_text", "3gp": "mov_text",
                         "webm": "webvtt"}
_TEXT_SUBTITLE_CODECS = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "microdvd", "subviewer",
                         "subviewer1", "sami", "realtext", "jacosub", "mpl2", "pjs", "vplayer", "stl", "eia_608"}
_TIMECODE_TRACK_MUXERS = ("mp4", "mov", "ipod")  # the muxer writes a tmcd track from the video's timecode tag


@dataclass
class _SideStream:
    src: Any
    out: Any
    reencode: bool  # audio: decoded and encoded again
    text: bool = False  # subtitles: decoded and encoded in the container's text format


class SideStreams:
    """``add_to(out)`` before the output's header is written, then ``follow(t)`` as the video
    reaches ``t`` seconds, ``finish()`` after the last frame, ``close()`` on every path."""

    def __init__(self, source: Path | None, video_index: int, format_name: str,
                 note: Callable[[str], None]) -> None:
        self._source = source
        self._video_index = video_index
        self._format_name = format_name
        self._note = note
        self._out: Any = None
        self._src: Any = None
        self._side: dict[int, _SideStream] = {}
        self._iter: Any = None
        self._held_packet: Any = None

    def add_to(self, out: Any) -> None:
        """Add an output stream to ``out`` for each source stream it can take."""
        self._out = out
        if self._source is None:
            return
        try:
            self._src = open_input(self._source)
        except InputError:
            return
        for s in self._src.streams:
            if s.index == self._video_index:
                continue
            kind = s.type
            codec = s.codec_context.name if s.codec_context is not None else None
            label = f"{kind} stream #{s.index}" + (f" ({codec})" if codec else "")
            if kind == "video":
                self._note(f"dropped extra {label}: only the main video stream is processed")
                continue
            if kind not in ("audio", "subtitle", "data", "attachment"):
                self._note(f"dropped {label}: unknown stream type")
                continue
            if kind == "audio" and not _audio_parameters_ok(s):  # no decoder parameters, 0 Hz, no channels
                self._note(f"dropped {label}: its codec is unknown or its parameters are damaged")
                continue
            refusal = self._copy_refusal(s)
            if refusal is None:
                copy = out.add_stream_from_template(s)
                _copy_stream_tags(s, copy)
                self._side[s.index] = _SideStream(s, copy, reencode=False)
                continue
            if kind == "audio":
                encoded = self._audio_encoder_for(s)
                if encoded is not None:
                    _copy_stream_tags(s, encoded)
                    self._side[s.index] = _SideStream(s, encoded, reencode=True)
                    self._note(f"re-encoded {label} to {encoded.codec_context.name}: {refusal}")
                    continue
            if kind == "subtitle" and codec in _TEXT_SUBTITLE_CODECS and self._add_text_subtitles(s, label):
                continue
            if kind == "data" and s.metadata.get("timecode") and out.streams.video:
                self._keep_timecode(s, label, out.streams.video[0])
                continue
            if kind == "subtitle" and codec not in _TEXT_SUBTITLE_CODECS and self._format_name in _TEXT_SUBTITLE_FORMAT:
                refusal += " (bitmap subtitles cannot be converted to its text format)"
            self._note(f"dropped {label}: {refusal}")
        if self._side:
            self._iter = iter(self._src.demux(*[self._src.streams[i] for i in self._side]))
        else:
            self._src.close()
            self._src = None

    def follow(self, video_s: float) -> None:
        """Mux the packets up to a little past ``video_s`` seconds, where the video has got to."""
        self._mux_until(video_s + _LEAD_S)

    def finish(self) -> None:
        """Mux every packet left and flush the audio encoders."""
        self._mux_until(None)

    def close(self) -> None:
        """Close the source (the output is the writer's). Safe to call more than once."""
        src, self._src = self._src, None
        if src is not None:
            src.close()

    def _copy_refusal(self, s: Any) -> str | None:
        """Why the output container cannot take stream ``s`` copied as is (None: it can). Tried on
        a scratch muxer in memory: header, then (for data streams, which muxers often reject only
        then) the stream's first packet, then the trailer."""
        fmt = self._format_name
        what = f"{s.codec_context.name if s.codec_context is not None else 'untyped'} {s.type}"
        scratch = av.open(io.BytesIO(), mode="w", format=fmt)
        stage = "header"
        try:
            out = scratch.add_stream_from_template(s)
            scratch.start_encoding()
            if s.type == "data":
                packet = self._first_packet(s.index)
                if packet is not None:
                    stage = "packets"
                    packet.stream = out
                    scratch.mux(packet)
            scratch.close()
            return None
        except (ValueError, av.error.FFmpegError, NotImplementedError, TypeError):
            if stage == "packets":
                return f"the {fmt} muxer rejects its packets"
            if s.type == "attachment":
                return f"{fmt} has no attachments (Matroska has)"
            return f"{fmt} has no way to store {what} streams"
        finally:
            try:
                scratch.close()
            except Exception:
                pass

    def _first_packet(self, index: int, limit: int = 2000) -> Any:
        """The first non-empty packet of stream ``index`` among the source's first ``limit``."""
        assert self._source is not None
        try:
            with open_input(self._source) as c:
                for n, packet in enumerate(c.demux()):
                    if n >= limit:
                        return None
                    if packet.stream.index == index and packet.size:
                        return packet
        except (av.error.FFmpegError, InputError):
            return None
        return None

    def _add_text_subtitles(self, s: Any, label: str) -> bool:
        """An output stream in the container's text subtitle format, fed from ``s`` decoded."""
        target = _TEXT_SUBTITLE_FORMAT.get(self._format_name)
        if target is None:
            return False
        try:
            dec = s.codec_context
            dec.open()  # for the ASS header the encoder starts from
            out = self._out.add_stream(target)
            out.time_base = s.time_base
            out.codec_context.time_base = s.time_base
            out.codec_context.subtitle_header = dec.subtitle_header
        except (ValueError, av.error.FFmpegError):
            return False
        _copy_stream_tags(s, out)
        self._side[s.index] = _SideStream(s, out, reencode=False, text=True)
        self._note(f"converted {label} to {target}: "
                   f"{self._format_name} stores text subtitles only as {target}")
        return True

    def _keep_timecode(self, s: Any, label: str, video: Any) -> None:
        """The timecode of data stream ``s`` as the output video's timecode tag: MP4/MOV muxers
        write a tmcd track from it, others keep the tag."""
        video.metadata["timecode"] = s.metadata["timecode"]
        if self._format_name not in _TIMECODE_TRACK_MUXERS:
            self._note(f"kept the timecode of {label} as the video's TIMECODE tag: "
                       f"{self._format_name} has no timecode tracks")

    def _audio_encoder_for(self, s: Any) -> Any:
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

    def _mux_until(self, until_s: float | None) -> None:
        """Mux copied/re-encoded packets up to ``until_s`` seconds (all of them when None)."""
        if self._iter is None:
            return
        while True:
            packet = self._held_packet
            self._held_packet = None
            if packet is None:
                try:
                    packet = next(self._iter)
                except StopIteration:
                    self._iter = None
                    break
                except av.error.FFmpegError:
                    self._iter = None  # damaged tail of a side stream: keep what we have
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
            try:
                if side.reencode:
                    self._encode_audio(side, packet)
                elif side.text:
                    self._convert_subtitle(side, packet)
                else:
                    packet.stream = side.out
                    self._out.mux(packet)
            except av.error.FFmpegError as err:
                raise self._damaged(side, err) from None
        for side in self._side.values():
            if side.reencode:
                try:
                    for p in side.out.encode(None):
                        self._out.mux(p)
                except av.error.FFmpegError as err:
                    raise self._damaged(side, err) from None

    def _damaged(self, side: _SideStream, err: av.error.FFmpegError) -> InputError:
        """A side stream whose packets cannot be decoded, re-encoded or written: about the input's stream."""
        s = side.src
        reason = getattr(err, "strerror", None) or type(err).__name__
        return InputError(f"{s.type} stream #{s.index} of {self._source} is damaged: its packets cannot be "
                          f"{'re-encoded' if side.reencode else 'written'} ({reason})")

    def _encode_audio(self, side: _SideStream, packet: Any) -> None:
        frames = side.src.codec_context.decode(packet) if packet is not None else side.src.codec_context.decode(None)
        for frame in frames:
            for p in side.out.encode(frame):
                self._out.mux(p)


    def _convert_subtitle(self, side: _SideStream, packet: Any) -> None:
        """One subtitle packet decoded and encoded again, at the packet's own time and duration."""
        try:
            subs = side.src.codec_context.decode2(packet)
            if subs is None:
                return
            out = side.out.codec_context.encode_subtitle(subs)
        except av.error.FFmpegError:
            return  # an empty or undecodable cue: nothing to show
        out.pts, out.dts, out.duration = packet.pts, packet.pts, packet.duration
        out.time_base = packet.time_base
        out.stream = side.out
        self._out.mux(out)


def _audio_parameters_ok(s: Any) -> bool:
    """An audio stream a muxer can take: known decoder parameters, a sample rate and channels."""
    cc = s.codec_context
    try:
        return cc is not None and int(cc.sample_rate or 0) > 0 and int(cc.channels or 0) > 0
    except (AttributeError, TypeError, ValueError):
        return False


def _copy_stream_tags(src: Any, out: Any) -> None:
    for k in _COPY_META_KEYS:
        v = src.metadata.get(k)
        if v:
            out.metadata[k] = v
    try:
        out.disposition = src.disposition
    except Exception:
        pass
