"""Mutated video files: every one is refused with a typed error, or runs with every frame of the original.

A seeded generator damages small valid clips (five containers, eight codecs) with a handful of mutators:
flipped bytes, zeroed, deleted, duplicated or inserted ranges, truncation, a damaged header. For every
file, in-process: ``plan`` (probe, packet scan, timing and gap checks) either raises a
``VidrestoreError`` or passes, and then the pipeline's reader either raises one or yields exactly the
frames of the undamaged original (its count: no frame lost, none repeated, whatever the damaged file
itself promises); nothing else may be raised, and the input is never changed. A sample also goes through
``vidrestore enhance``: exit 0 with exactly 2N frames written (N: the original's), or a typed exit code with
one line and nothing left behind; never exit 70 (a bug) or a traceback.

``VIDRESTORE_FUZZ=N`` runs N files instead of the default (thousands for a release check).
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_clip
from vidrestore.cli import main
from vidrestore.config import EnhanceConfig
from vidrestore.errors import VidrestoreError

COUNT = int(os.environ.get("VIDRESTORE_FUZZ", "240"))
CLI_EVERY = int(os.environ.get("VIDRESTORE_FUZZ_CLI_EVERY", "24"))  # one file in this many also through the CLI
RNG_SEED = int(os.environ.get("VIDRESTORE_FUZZ_SEED", "20261202"))  # another seed: other mutants
pytestmark = pytest.mark.slow  # the full suite's lane: `pytest -m "not slow"` leaves it out

SEEDS = (  # (name, codec, pixel format, audio)
    ("h264.mp4", "libx264", "yuv420p", True),
    ("h264.mkv", "libx264", "yuv420p", False),
    ("vp9.webm", "libvpx-vp9", "yuv420p", False),
    ("h264.mov", "libx264", "yuv420p", True),
    ("mpeg4.avi", "mpeg4", "yuv420p", False),
    ("ffv1.mkv", "ffv1", "yuv420p", False),
    ("hevc.mp4", "libx265", "yuv420p", True),
    ("vp8.webm", "libvpx", "yuv420p", False),
    ("mjpeg.avi", "mjpeg", "yuvj420p", False),
    ("prores.mov", "prores_ks", "yuv422p10le", False),
)


def _flip(data: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return data


def _span(data: bytearray, rng: random.Random) -> tuple[int, int]:
    a = rng.randrange(len(data))
    return a, min(len(data), a + rng.randint(1, max(1, len(data) // 8)))


def _zero(data, rng):
    a, b = _span(data, rng)
    data[a:b] = bytes(b - a)
    return data


def _delete(data, rng):
    a, b = _span(data, rng)
    del data[a:b]
    return data


def _duplicate(data, rng):
    a, b = _span(data, rng)
    data[b:b] = data[a:b]
    return data


def _insert(data, rng):
    a = rng.randrange(len(data))
    data[a:a] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 512)))
    return data


def _truncate(data, rng):
    return data[: rng.randrange(1, len(data))]


def _header(data, rng):
    n = min(len(data), rng.randint(16, 1024))
    data[:n] = bytes(rng.randrange(256) for _ in range(n))
    return data


def _swap(data, rng):
    a, b = sorted(rng.randrange(len(data)) for _ in range(2))
    n = min(b - a, rng.randint(1, 2048))
    data[a:a + n], data[b:b + n] = data[b:b + n], data[a:a + n]
    return data


MUTATORS = (_flip, _zero, _delete, _duplicate, _insert, _truncate, _header, _swap)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("seeds")
    return [write_clip(folder / name, n=FRAMES, size=(64, 48), codec=codec, pix_fmt=pix_fmt, audio=audio)
            for name, codec, pix_fmt, audio in SEEDS]


def _mutants(seeds: list[Path], folder: Path, count: int):
    rng = random.Random(RNG_SEED)
    for i in range(count):
        seed = seeds[i % len(seeds)]
        data = bytearray(seed.read_bytes())
        names = []
        for _ in range(rng.choice((1, 1, 2))):
            mutator = rng.choice(MUTATORS)
            names.append(mutator.__name__.strip("_"))
            data = mutator(data, rng) if data else data
        path = folder / f"{i:05d}-{'-'.join(names)}-{seed.name}"
        path.write_bytes(bytes(data))
        yield i, path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


FRAMES = 12  # every seed's frames


def _in_process(path: Path, out: Path) -> str:
    """'refused' (typed error from the plan), 'decode error' (typed, from the reader) or 'ok' (every frame of
    the original)."""
    from vidrestore import plan
    from vidrestore.io.reader import FrameReader

    try:
        p = plan.plan(EnhanceConfig(input=path, output=out, factor=2, mode="interp"))
    except VidrestoreError:
        return "refused"
    try:
        with FrameReader(p.info) as reader:
            n = sum(1 for _ in reader)
    except VidrestoreError:
        return "decode error"
    assert n == p.info.frame_count, f"{path.name}: {n} frames decoded, {p.info.frame_count} promised (silent loss)"
    assert n == FRAMES, f"{path.name}: {n} frames decoded, the original has {FRAMES} (silent loss or repeat)"
    return "ok"


def test_mutated_files_are_refused_or_run_with_every_frame(seeds, tiny_weights, tmp_path):
    from vidrestore.cli.enhance import quiet_ffmpeg
    from vidrestore.io.probe import probe

    quiet_ffmpeg()
    outcomes: dict[str, int] = {}
    exits: dict[int, int] = {}
    work = tmp_path / "mutants"
    work.mkdir()
    for i, path in _mutants(seeds, work, COUNT):
        before = _sha(path)
        out_dir = tmp_path / f"out{i}"
        out_dir.mkdir()
        try:
            outcome = _in_process(path, out_dir / "o.mp4")
        except AssertionError:
            raise
        except Exception as err:  # never anything but a typed error
            raise AssertionError(f"{path.name}: {type(err).__name__}: {err}") from err
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert os.listdir(out_dir) == [], path.name  # the in-process checks write nothing
        if i % CLI_EVERY == 0:
            res = CliRunner().invoke(main, ["enhance", str(path), "-o", str(out_dir / "o.mp4"), "--mode", "interp",
                                            "--weights", str(tiny_weights), "--device", "cpu", "--threads", "1"])
            exits[res.exit_code] = exits.get(res.exit_code, 0) + 1
            assert "Traceback" not in res.output and res.exit_code != 70, (path.name, res.output)
            assert res.exception is None or isinstance(res.exception, SystemExit), (path.name, res.exception)
            if res.exit_code == 0:
                assert os.listdir(out_dir) == ["o.mp4"], path.name
                assert probe(out_dir / "o.mp4", scan=True).frame_count == 2 * FRAMES, path.name
            else:
                assert res.exit_code in (2, 3, 4, 5, 6), (path.name, res.output)
                assert res.output.strip().count("\n") == 0 or "note:" in res.output, (path.name, res.output)
                assert os.listdir(out_dir) == [], path.name  # no partial file left behind
        assert _sha(path) == before, f"{path.name}: the input was changed"
        for leftover in out_dir.iterdir():
            leftover.unlink()
        out_dir.rmdir()
        path.unlink()
    # the mutators do both: some files still run, some are refused
    assert outcomes.get("ok", 0) > 0 and outcomes.get("refused", 0) + outcomes.get("decode error", 0) > 0, outcomes
    print(f"fuzz: {COUNT} files: {outcomes}; command line exits {exits}")
