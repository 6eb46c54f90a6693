"""End to end: ``enhance`` with the tiny random-weight model on tiny clips made in the test."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import CLIPS, decode_all, moving_pattern, packet_times, real_frames
from vidrestore.cli import main
from vidrestore.config import EnhanceConfig, RunOptions
from vidrestore.io import probe
from vidrestore.pipeline import run

CPU = torch.device("cpu")


def enhance(model, src: Path, dst: Path, **kw):
    notes: list[str] = []
    run_kw = {k: kw.pop(k) for k in ("batch", "tile", "ensemble") if k in kw}
    cfg = EnhanceConfig(input=src, output=dst, run=RunOptions(**run_kw), **kw)
    summary = run(cfg, notes=notes.append, model=model, device=CPU, dtype=torch.float32)
    return summary, notes


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_frame_count_rate_and_duration(tiny_model, make_clip, tmp_path, factor):
    n = 6
    src = make_clip(n=n, size=(48, 32))
    dst = tmp_path / f"out{factor}.mp4"
    summary, _ = enhance(tiny_model, src, dst, factor=factor)
    assert (summary.frames_in, summary.frames_out) == (n, n * factor)
    info = probe(dst)
    assert info.frame_count == n * factor
    assert info.rate == Fraction(30000, 1001) * factor  # 240000/1001 for K=8, exactly
    assert info.cfr is True
    pts, durs, tb = packet_times(dst)
    step = pts[1] - pts[0]
    assert all(b - a == step for a, b in zip(pts, pts[1:]))
    assert Fraction(step) * tb == Fraction(1001, 30000 * factor)
    in_pts, in_durs, in_tb = packet_times(src)
    in_duration = (in_pts[-1] + in_durs[-1] - in_pts[0]) * in_tb
    out_duration = (pts[-1] + durs[-1] - pts[0]) * tb
    assert out_duration == in_duration == Fraction(n * 1001, 30000)
    # output frame j*K is at input frame j's time
    assert [p * tb for p in pts[::factor]] == [p * in_tb for p in in_pts]
    # audio copied and as long as the video (within one AAC frame), starting together
    import av

    with av.open(str(dst)) as c:
        a = c.streams.audio[0]
        assert a.start_time * a.time_base == 0 == pts[0]
        audio_duration = a.duration * a.time_base
    assert abs(float(audio_duration - out_duration)) <= 1024 / 48000
    assert leftovers(tmp_path) == []


def test_audio_is_copied_not_reencoded(tiny_model, make_clip, tmp_path):
    import av

    src = make_clip(n=4)
    dst = tmp_path / "out.mkv"
    enhance(tiny_model, src, dst, factor=2)

    def audio_packets(p):
        with av.open(str(p)) as c:
            return [bytes(pk) for pk in c.demux(c.streams.audio[0]) if pk.size]

    assert audio_packets(dst) == audio_packets(src)


def test_webm_reencodes_audio_to_opus_with_a_note(tiny_model, make_clip, tmp_path):
    src = make_clip(n=4, size=(64, 64))
    dst = tmp_path / "out.webm"
    _, notes = enhance(tiny_model, src, dst, factor=2, codec="libsvtav1")
    info = probe(dst)
    assert [s.codec for s in info.streams] == ["av1", "opus"]
    assert any("re-encoded audio" in n and "opus" in n for n in notes)
    assert info.frame_count == 8


def test_interp_keeps_key_frames_bit_exact(tiny_model, make_clip, tmp_path):
    src = make_clip("in.mkv", moving_pattern(5, 48, 32), codec="ffv1", pix_fmt="yuv420p")
    dst = tmp_path / "out.mkv"
    enhance(tiny_model, src, dst, factor=4, mode="interp", codec="ffv1")
    src_frames = decode_all(src)
    out_frames = decode_all(dst)
    assert len(out_frames) == 20 and out_frames[0].format.name == "yuv420p"
    for j, f in enumerate(src_frames):
        for plane_in, plane_out in zip(f.planes, out_frames[4 * j].planes):
            assert bytes(plane_in) == bytes(plane_out)
    # and the new frames are new
    assert bytes(out_frames[1].planes[0]) != bytes(out_frames[0].planes[0])


def test_rgb_input_stays_rgb_and_lossless(tiny_model, make_clip, tmp_path):
    src = make_clip("rgb.mkv", moving_pattern(4, 40, 24), codec="ffv1", pix_fmt="bgr0", audio=False)
    dst = tmp_path / "out.mkv"
    enhance(tiny_model, src, dst, factor=2, mode="interp", codec="ffv1")
    assert probe(dst).pix_fmt == "bgr0"
    a = decode_all(src, "rgb24")
    b = decode_all(dst, "rgb24")
    assert all(np.array_equal(a[j], b[2 * j]) for j in range(4))


def test_joint_k1_equals_deblur(tiny_model, make_clip, tmp_path):
    src = make_clip("in.mkv", moving_pattern(4, 40, 24), codec="ffv1", audio=False)
    enhance(tiny_model, src, tmp_path / "j.mkv", factor=1, mode="joint", codec="ffv1")
    enhance(tiny_model, src, tmp_path / "d.mkv", factor=8, mode="deblur", codec="ffv1")
    a, b = decode_all(tmp_path / "j.mkv", "rgb24"), decode_all(tmp_path / "d.mkv", "rgb24")
    assert len(a) == len(b) == 4 and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("size,codec", [((67, 45), "libx264"), ((33, 17), "ffv1")])
def test_odd_frame_sizes(tiny_model, make_clip, tmp_path, size, codec):
    src = make_clip("odd.mkv", moving_pattern(4, *size), codec="ffv1", pix_fmt="yuv444p")
    dst = tmp_path / "out.mkv"
    enhance(tiny_model, src, dst, factor=2, codec=codec)
    info = probe(dst)
    assert (info.width, info.height, info.frame_count) == (*size, 8)


def test_odd_size_420_input_stays_420_padded_to_even_with_a_note(tiny_model, make_clip, tmp_path):
    src = make_clip("odd.mkv", moving_pattern(3, 481, 269), codec="ffv1", pix_fmt="yuv420p", audio=False)
    dst = tmp_path / "out.mp4"
    _, notes = enhance(tiny_model, src, dst, factor=2, crf=0)  # lossless luma, for the check below
    info = probe(dst)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.frame_count) == ("h264", "yuv420p", 482, 270, 6)
    assert notes == ["encoded at 482x270: the 481x269 frames are padded by repeating the last column and row, "
                     "because libx264 cannot store an odd size with yuv420p chroma subsampling"]
    plane = decode_all(dst)[1].planes[0]  # luma: the last column and row repeat their neighbours
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
    assert np.array_equal(y[:, -1], y[:, -2]) and np.array_equal(y[-1], y[-2])
    # a codec that takes odd 4:2:0 sizes keeps the exact size
    _, notes = enhance(tiny_model, src, tmp_path / "out.mkv", factor=2, codec="ffv1")
    info = probe(tmp_path / "out.mkv")
    assert (info.pix_fmt, info.width, info.height) == ("yuv420p", 481, 269) and notes == []


def test_ten_bit_input_gives_8_bit_h264_by_default_and_hevc_main10_on_request(tiny_model, make_clip, tmp_path):
    import av

    frames16 = [f.astype(np.uint16) * 257 for f in moving_pattern(3, 32, 32)]
    src = make_clip("ten.mkv", frames16, codec="ffv1", pix_fmt="yuv420p10le", audio=False)
    dst = tmp_path / "out.mp4"
    _, notes = enhance(tiny_model, src, dst, factor=2)  # default libx264: High 10 plays almost nowhere
    info = probe(dst)
    assert (info.pix_fmt, info.bit_depth, info.frame_count) == ("yuv420p", 8, 6)
    assert any("10-bit input encoded as 8-bit yuv420p" in n and "libx265" in n for n in notes)
    dst = tmp_path / "out10.mp4"
    _, notes = enhance(tiny_model, src, dst, factor=2, codec="libx265")
    info = probe(dst)
    assert (info.codec, info.pix_fmt, info.bit_depth, info.frame_count) == ("hevc", "yuv420p10le", 10, 6)
    assert notes == []
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_tag == "hvc1"
        assert c.streams.video[0].codec_context.profile == "Main 10"


def test_scene_cut_frames_are_held_not_blended(tiny_model, make_clip, tmp_path):
    frames = real_frames("01_dog.mp4", 4, 48, 32) + real_frames("03_blocks.mp4", 4, 48, 32)
    src = make_clip("cut.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    k = 4
    dst = tmp_path / "out.mkv"
    summary, _ = enhance(tiny_model, src, dst, factor=k, codec="ffv1")
    assert summary.scene_cuts == 1
    out = decode_all(dst, "rgb24")
    assert len(out) == 8 * k
    held = out[3 * k]  # the last frame before the cut ...
    assert all(np.array_equal(out[3 * k + i], held) for i in range(1, k))  # ... is held
    # without detection the same positions are blends of the two scenes
    enhance(tiny_model, src, tmp_path / "blend.mkv", factor=k, codec="ffv1", scene_detect=False)
    blend = decode_all(tmp_path / "blend.mkv", "rgb24")
    assert not np.array_equal(blend[3 * k + 2], blend[3 * k])


def test_metadata_is_carried_over(tiny_model, make_clip, tmp_path):
    src = make_clip(n=3, rotation=90, hflip=True, colour=(1, 1, 1, 1), language="deu")
    dst = tmp_path / "out.mp4"
    enhance(tiny_model, src, dst, factor=2)
    a, b = probe(src), probe(dst)
    assert b.rotation == a.rotation != 0
    assert b.display_matrix == a.display_matrix  # rotation and the flip
    assert b.colour == a.colour
    assert b.streams[0].language == "deu" and b.streams[1].language == "eng"


def test_real_clip_streams_and_timecode(tiny_model, tmp_path):
    """The shared clip has H.264 + AAC + a timecode data stream. MP4 and MOV cannot take the data
    stream as is but keep the timecode (the muxer's own tmcd track), Matroska as a tag (with a note),
    NUT copies it. Interp x1 does not need the model."""
    import av

    real = CLIPS / "01_dog.mp4"
    src = tmp_path / "dog.nut"
    with av.open(str(real)) as c, av.open(str(src), "w") as out:  # the first 0.3 s, every stream
        streams = {s.index: out.add_stream_from_template(s) for s in c.streams}
        for pk in c.demux():
            if pk.dts is None or float(pk.pts * pk.time_base) >= 0.3:
                continue
            pk.stream = streams[pk.stream.index]
            out.mux(pk)
    assert [s.type for s in probe(src).streams] == ["video", "audio", "data"]
    tc = probe(src).streams[2].detail
    assert tc.startswith("timecode ")
    for ext in ("mp4", "mov"):
        summary, notes = enhance(tiny_model, src, tmp_path / f"out.{ext}", factor=1, mode="interp")
        assert summary.frames_out == probe(src).frame_count == 9
        assert notes == []
        streams = probe(tmp_path / f"out.{ext}").streams
        assert [s.type for s in streams] == ["video", "audio", "data"] and streams[2].detail == tc
    _, notes = enhance(tiny_model, src, tmp_path / "out.mkv", factor=1, mode="interp")
    assert notes == ["kept the timecode of data stream #2 as the video's TIMECODE tag: matroska has no timecode tracks"]
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.streams.video[0].metadata.get("TIMECODE") == tc.split()[1]
    _, notes = enhance(tiny_model, src, tmp_path / "out.nut", factor=1, mode="interp")
    assert [s.type for s in probe(tmp_path / "out.nut").streams] == ["video", "audio", "data"]
    assert notes == []
    assert leftovers(tmp_path) == []


def test_cli_enhance_and_info(make_clip, tiny_weights, tmp_path):
    src = make_clip(n=4)
    dst = tmp_path / "out.mp4"
    runner = CliRunner()
    res = runner.invoke(main, ["enhance", str(src), "-o", str(dst), "--fps-x", "3", "--weights", str(tiny_weights),
                               "--device", "cpu", "--crf", "30", "--preset", "ultrafast"])
    assert res.exit_code == 0, res.output
    assert "4 -> 12 frames" in res.stderr
    res = runner.invoke(main, ["info", str(dst), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["frame_count"] == 12 and data["rate"] == "90000/1001" and data["cfr"] is True
    res = runner.invoke(main, ["info", str(dst)])
    assert "90000/1001" in res.stdout and "audio" in res.stdout
    res = runner.invoke(main, ["enhance", str(src), "-o", str(tmp_path / "q.mp4"), "--weights", str(tiny_weights),
                               "--device", "cpu", "--quiet"])
    assert res.exit_code == 0 and res.stderr == "" and res.stdout == ""


def test_variable_frame_rate_keeps_each_interval(tiny_model, make_clip, tmp_path):
    pts = [0, 1, 2, 4, 5, 8]  # time base 1/25: irregular intervals
    src = make_clip("vfr.mp4", moving_pattern(6, 32, 32), rate=Fraction(25), time_base=Fraction(1, 25), pts=pts,
                    audio=False)
    dst = tmp_path / "out.mp4"
    enhance(tiny_model, src, dst, factor=2)
    in_pts, in_durs, in_tb = packet_times(src)  # the muxer may pick a finer time base
    t_in = [p * in_tb for p in in_pts] + [(in_pts[-1] + in_durs[-1]) * in_tb]
    assert t_in[:-1] == [Fraction(p, 25) for p in pts]
    out_pts, durs, tb = packet_times(dst)
    times = [p * tb for p in out_pts]
    expected = []
    for j in range(len(pts)):
        expected += [t_in[j], (t_in[j] + t_in[j + 1]) / 2]
    assert times == expected  # frame j*2+1 halfway through each interval
    assert (out_pts[-1] + durs[-1]) * tb == (in_pts[-1] + in_durs[-1]) * in_tb  # same end as the input


def test_pipeline_frames_alive_do_not_grow_with_video_length(tiny_model, make_clip, tmp_path, monkeypatch):
    """A clip 10x longer: the most decoded and output frames alive at once (reader queue, engine
    window, writer queue) stays the same. Every frame array is tracked with a weak reference."""
    import weakref

    from vidrestore.io.reader import FrameReader
    from vidrestore.tiler import Canvas

    class Live:
        def __init__(self):
            self.refs: dict[int, weakref.ref] = {}
            self.most = 0

        def add(self, arr):
            key = id(arr)
            self.refs[key] = weakref.ref(arr, lambda _, k=key: self.refs.pop(k, None))
            self.most = max(self.most, len(self.refs))

    live = Live()
    to_decoded, to_numpy = FrameReader._to_decoded, Canvas.split

    def tracked_decoded(self, *a):
        d = to_decoded(self, *a)
        live.add(d.rgb)
        return d

    def tracked_numpy(self, *a):
        out = to_numpy(self, *a)
        for arr in out:
            live.add(arr)
        return out

    monkeypatch.setattr(FrameReader, "_to_decoded", tracked_decoded)
    monkeypatch.setattr(Canvas, "split", tracked_numpy)
    most = {}
    for n in (16, 160):
        live.most = 0
        src = make_clip(f"n{n}.mkv", moving_pattern(n, 32, 16), codec="ffv1")
        summary, _ = enhance(tiny_model, src, tmp_path / f"out{n}.mkv", factor=4, batch=2, codec="ffv1")
        assert summary.frames_out == 4 * n
        most[n] = live.most
    # bounded by the queues (8 + 8) and a batch of windows, whatever the length
    assert most[160] <= most[16] + 4 and most[160] < 48, most


def test_subtitles_copied_where_the_container_can_hold_them(tiny_model, make_clip, tmp_path):
    import av

    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,100\nHello\n\n2\n00:00:00,100 --> 00:00:00,130\nWorld\n")
    clip = make_clip(n=4)
    src = tmp_path / "subs.mkv"
    with av.open(str(clip)) as v, av.open(str(srt)) as s, av.open(str(src), "w") as out:
        streams = {st.index: out.add_stream_from_template(st) for st in v.streams}
        sub = out.add_stream_from_template(s.streams[0])
        sub.metadata["language"] = "fra"
        for pk in v.demux():
            if pk.dts is not None:
                pk.stream = streams[pk.stream.index]
                out.mux(pk)
        for pk in s.demux():
            if pk.dts is not None:
                pk.stream = sub
                out.mux(pk)

    def subtitles(path):
        with av.open(str(path)) as c:
            st = c.streams.subtitles[0]
            return st.metadata.get("language"), [(p.pts * p.time_base, bytes(p)) for p in c.demux(st) if p.size]

    _, notes = enhance(tiny_model, src, tmp_path / "out.mkv", factor=2)
    assert notes == [] and subtitles(tmp_path / "out.mkv") == subtitles(src)
    assert subtitles(src)[1][1][1] == b"World"
    # MP4 takes text subtitles only as mov_text: converted, each cue at its own time and with its text
    _, notes = enhance(tiny_model, src, tmp_path / "out.mp4", factor=2)
    assert notes == ["converted subtitle stream #2 (srt) to mov_text: mp4 stores text subtitles only as mov_text"]
    info = probe(tmp_path / "out.mp4")
    assert [(s.type, s.codec) for s in info.streams] == [("video", "h264"), ("audio", "aac"), ("subtitle", "mov_text")]
    with av.open(str(tmp_path / "out.mp4")) as c:
        st = c.streams.subtitles[0]
        assert st.metadata.get("language") == "fra"
        cues = [(p.pts * p.time_base, p.duration * p.time_base, bytes(p)[2:]) for p in c.demux(st) if p.size > 2]
    (t0, _), (t1, _) = subtitles(src)[1]
    assert cues == [(t0, Fraction(1, 10), b"Hello"), (t1, Fraction(3, 100), b"World")]
