"""Image sequences in and out of ``enhance``, codec defaults by container, and ``--threads``."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import moving_pattern, packet_times
from vidrestore import threads
from vidrestore.cli import main
from vidrestore.config import EnhanceConfig, parse_rate
from vidrestore.errors import InputError, OutputError, UsageError
from vidrestore.io import formats, probe, sequence
from vidrestore.pipeline import run
from vidrestore.plan import plan

CPU = torch.device("cpu")
SIZE = (24, 16)  # W, H: tiny frames keep the model's share small


def write_frames(folder: Path, frames, name: str = "f{}.png", start: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        img = cv2.cvtColor(f, cv2.COLOR_RGB2BGR) if f.ndim == 3 else f
        assert cv2.imwrite(str(folder / name.format(i + start)), img)
    return folder


def enhance(model, src, dst, **kw):
    notes: list[str] = []
    summary = run(EnhanceConfig(input=src, output=dst, **kw), notes=notes.append, model=model, device=CPU,
                  dtype=torch.float32)
    return summary, notes


def read_rgb(path: Path) -> np.ndarray:
    return sequence.read_image(path)


def test_png_folder_at_24_fps_to_mp4_at_exactly_48(tiny_model, tmp_path):
    src = write_frames(tmp_path / "frames", moving_pattern(48, *SIZE))
    dst = tmp_path / "out.mp4"
    summary, notes = enhance(tiny_model, src, dst, fps="24", mode="interp")
    assert (summary.frames_in, summary.frames_out) == (48, 96)
    assert any("48 frames at 24 fps (given by --fps)" in n for n in notes)
    info = probe(dst)
    assert info.frame_count == 96 and info.rate == 48 and info.cfr is True
    pts, durs, tb = packet_times(dst)
    assert all(Fraction(b - a) * tb == Fraction(1, 48) for a, b in zip(pts, pts[1:]))
    assert (pts[-1] + durs[-1] - pts[0]) * tb == 2  # 48 frames at 24 fps
    assert [s.type for s in info.streams] == ["video"]


def test_folder_to_numbered_pngs_interp_keeps_key_frames_bit_exact(tiny_model, tmp_path):
    frames = moving_pattern(6, *SIZE)
    src = write_frames(tmp_path / "frames", frames, name="shot_{}.png")  # natural order: shot_2 before shot_10
    os.rename(src / "shot_6.png", src / "shot_10.png")
    out = tmp_path / "frames2x"
    summary, notes = enhance(tiny_model, src, f"{out}/", mode="interp", factor=2)
    assert any("30000/1001 fps (the default" in n for n in notes)
    names = sorted(os.listdir(out))
    assert names == [f"{n:06d}.png" for n in range(1, 13)]
    for j, f in enumerate(frames):
        assert np.array_equal(read_rgb(out / f"{2 * j + 1:06d}.png"), f)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # an existing non-empty folder is refused without --overwrite, replaced with it
    with pytest.raises(OutputError, match="not empty"):
        plan(EnhanceConfig(input=src, output=out))
    enhance(tiny_model, src, out, mode="interp", factor=1, overwrite=True)
    assert len(os.listdir(out)) == 6
    # frames that appear at the target while running are never replaced without --overwrite
    late = tmp_path / "late"
    writer = sequence.SequenceWriter(sequence.frames_target(late, 1, overwrite=False))
    writer.start()
    writer.write(frames[0], 0, 1)
    late.mkdir()
    (late / "mine.txt").write_text("keep")
    with pytest.raises(OutputError, match="appeared while running"):
        writer.finish()
    assert os.listdir(late) == ["mine.txt"] and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sixteen_bit_pngs_stay_sixteen_bit_and_patterns(tiny_model, tmp_path):
    frames = [(f.astype(np.uint16) * 257 + 3) for f in moving_pattern(3, *SIZE)]
    src = write_frames(tmp_path / "deep", frames, name="{:04d}.png", start=0)
    grey = (np.arange(SIZE[0] * SIZE[1], dtype=np.uint16).reshape(SIZE[1], SIZE[0]) * 100)
    assert cv2.imwrite(str(src / "0003.png"), grey)  # grey (2-D) becomes RGB
    out = tmp_path / "out" / "%03d.png"
    (tmp_path / "out").mkdir()
    summary, _ = enhance(tiny_model, src / "%04d.png", out, mode="interp", factor=2)
    assert summary.frames_out == 8 and summary.pix_fmt == "rgb48le"
    first = cv2.imread(str(tmp_path / "out" / "001.png"), cv2.IMREAD_UNCHANGED)
    assert first.dtype == np.uint16
    assert np.array_equal(read_rgb(tmp_path / "out" / "001.png"), frames[0])
    assert np.array_equal(read_rgb(tmp_path / "out" / "007.png"), np.repeat(grey[:, :, None], 3, axis=2))
    assert sorted(os.listdir(tmp_path / "out")) == [f"{n:03d}.png" for n in range(1, 9)]


def test_mixed_sizes_and_unreadable_frames_are_one_line_errors(make_clip, tiny_weights, tmp_path):
    frames = moving_pattern(4, *SIZE)
    mixed = write_frames(tmp_path / "mixed", frames)
    assert cv2.imwrite(str(mixed / "f3.png"), np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(InputError, match=r"frame .*f3\.png is 12x10, but f1\.png is 24x16"):
        plan(EnhanceConfig(input=mixed, output=tmp_path / "a.mp4"))
    bad = write_frames(tmp_path / "bad", frames)
    (bad / "f2.png").write_bytes(b"not a png at all, just text")
    runner = CliRunner()
    res = runner.invoke(main, ["enhance", str(bad), "-o", str(tmp_path / "b.mp4"), "--weights", str(tiny_weights),
                               "--device", "cpu"])
    assert res.exit_code == 3, res.output
    assert res.stderr.count("\n") == 1 and "f2.png" in res.stderr
    # a TIFF (no header check up front) that does not decode: found as it is read, still one line and exit 3
    tif = write_frames(tmp_path / "tif", frames, name="{}.tif")
    (tif / "3.tif").write_bytes(b"II*\x00garbage")
    res = runner.invoke(main, ["enhance", str(tif), "-o", str(tmp_path / "c.mp4"), "--weights", str(tiny_weights),
                               "--device", "cpu", "--mode", "interp", "--threads", "1"])
    assert res.exit_code == 3, res.output
    errors = [line for line in res.stderr.splitlines() if not line.startswith("note: ")]
    assert len(errors) == 1 and "3.tif" in errors[0], res.stderr
    assert not (tmp_path / "c.mp4").exists() and not any(".partial" in p.name for p in tmp_path.iterdir())
    res = runner.invoke(main, ["enhance", str(tif), "-o", str(tmp_path / "c_frames"), "--weights", str(tiny_weights),
                               "--device", "cpu", "--mode", "interp"])
    assert res.exit_code == 3 and "3.tif" in res.stderr  # frames out: the hidden folder goes too
    assert not (tmp_path / "c_frames").exists() and not any(".partial" in p.name for p in tmp_path.iterdir())
    with pytest.raises(UsageError, match="--fps is for image-sequence input"):
        plan(EnhanceConfig(input=make_clip(n=2), output=tmp_path / "d.mp4", fps="24"))
    with pytest.raises(UsageError, match="input's folder"):
        plan(EnhanceConfig(input=tif / "%d.tif", output=tif / "g%d.png"))
    with pytest.raises(UsageError, match="--codec"):
        plan(EnhanceConfig(input=mixed, output=tmp_path / "frames", codec="libx264"))


def test_webm_without_codec_works(tiny_model, make_clip, tmp_path):
    src = make_clip(n=3, size=SIZE)
    summary, _ = enhance(tiny_model, src, tmp_path / "out.webm", mode="interp")
    assert summary.codec == formats.default_codec("webm")
    info = probe(tmp_path / "out.webm")
    assert info.frame_count == 6 and info.codec in ("av1", "vp9")
    assert formats.default_codec("mp4", 10) == "libx264" == formats.default_codec("matroska")
    if formats.has_encoder("libsvtav1"):
        assert formats.default_codec("webm", 10) == "libsvtav1"


@pytest.mark.parametrize("text, rate", [("24", Fraction(24)), ("30000/1001", Fraction(30000, 1001)),
                                         ("23.976", Fraction(24000, 1001)), ("29.97", Fraction(30000, 1001)),
                                         ("12.5", Fraction(25, 2)), ("59.94", Fraction(60000, 1001))])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-24", "abc", "1/0", "5000"])
def test_parse_rate_rejects(text):
    with pytest.raises(UsageError, match="--fps"):
        parse_rate(text)


def test_threads_from_affinity_and_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    cpu_max = tmp_path / "cpu.max"
    assert threads.available_cpus(cpu_max) == 6  # no file: affinity alone
    cpu_max.write_text("max 100000\n")
    assert threads.available_cpus(cpu_max) == 6
    cpu_max.write_text("250000 100000\n")  # 2.5 CPUs' worth: 3 threads
    assert threads.available_cpus(cpu_max) == 3
    cpu_max.write_text("50000 100000\n")
    assert threads.available_cpus(cpu_max) == 1
    cpu_max.write_text("1600000 100000\n")  # a quota above the affinity: the affinity
    assert threads.available_cpus(cpu_max) == 6
    assert threads.resolve(2, cpu_max) == 2 and threads.resolve(None, cpu_max) == 6


def test_threads_option_parsing(tiny_weights, tmp_path):
    runner = CliRunner()
    for bad in ("0", "-2"):
        res = runner.invoke(main, ["enhance", "x.mp4", "-o", str(tmp_path / "y.mp4"), "--threads", bad])
        assert res.exit_code == 2 and "--threads" in res.stderr, res.output
    res = runner.invoke(main, ["enhance", "x.mp4", "-o", str(tmp_path / "y.mp4"), "--threads", "two"])
    assert res.exit_code == 2
    assert "--threads" in runner.invoke(main, ["enhance", "--help"]).output
    with pytest.raises(UsageError, match="--threads"):
        EnhanceConfig(input="a.mp4", output="b.mp4", threads=0)
    assert plan_threads(tmp_path) == threads.available_cpus()


def plan_threads(tmp_path: Path) -> int:
    src = write_frames(tmp_path / "t", moving_pattern(2, *SIZE))
    return plan(EnhanceConfig(input=src, output=tmp_path / "t.mp4")).threads


def test_natural_sort_is_shared_with_eval(tmp_path):
    from vidrestore.evaluate.sources import discover, load_clip

    frames = moving_pattern(3, *SIZE)
    folder = write_frames(tmp_path / "clip", frames, name="{}.png", start=9)  # 9, 10, 11
    clip = load_clip(discover(folder)[0])
    assert all(np.array_equal(a, b) for a, b in zip(clip.frames, frames))
