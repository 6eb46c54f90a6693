"""Shared fixtures: tiny clips made with PyAV (with an AAC audio track), real frames from the committed
test assets (``tests/assets``, cut from the project's shared data by ``scripts/make_test_assets.py``), and the
tiny flow-prior network with random weights (in memory and saved as a weights file)."""

from __future__ import annotations

import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

ASSETS = Path(__file__).resolve().parent / "assets"
# real frames and a short real clip, committed: every test that reads real material reads these
REDS = ASSETS / "reds_000"
CLIPS = ASSETS / "clips"
# the project's larger shared data lives beside the repository (../shared/data), in CI as here, but not
# beside a user's fresh clone: the few tests that need all of it are marked ``needs_shared``
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED / "reds_000").is_dir() or not (SHARED / "clips").is_dir(),
    reason=f"needs the project's shared data beside the repository ({SHARED} is absent; CI has it)")


def reds_rgb(index: int) -> np.ndarray:
    """Frame ``index`` (0-9) of the REDS sample (``tests/assets/reds_000``) as an RGB uint8 array."""
    import cv2

    path = REDS / f"{index:08d}.png"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"missing test asset {path} (REDS frames 0-9 are committed)"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def moving_pattern(n: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB uint8 frames of a smooth pattern drifting right and down (ordinary motion)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6.28, size=3)
    frames = []
    for i in range(n):
        x, y = xx - 1.5 * i, yy - 0.75 * i
        r = 127 + 100 * np.sin(x / 5.0 + phase[0])
        g = 127 + 100 * np.sin(y / 4.0 + phase[1])
        b = 127 + 100 * np.sin((x + y) / 7.0 + phase[2])
        frames.append(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))
    return frames


def write_clip(
    path: Path,
    frames: Sequence[np.ndarray] | None = None,
    *,
    n: int = 10,
    size: tuple[int, int] = (64, 48),
    rate: Fraction = Fraction(30000, 1001),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = True,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    hflip: bool = False,
    colour: tuple[int, int, int, int] | None = None,  # primaries, trc, matrix, range
    language: str | None = None,
    options: dict[str, str] | None = None,
    gop: int | None = None,
) -> Path:
    """Encode ``frames`` (HxWx3 uint8/uint16 RGB; default: a moving pattern) into ``path``,
    with a 440 Hz stereo AAC track exactly as long as the video when ``audio``
    (:func:`vidrestore.io.clips.write_video`)."""
    from vidrestore.io.clips import write_video

    if frames is None:
        frames = moving_pattern(n, *size)
    tb = time_base or Fraction(1) / rate
    if pts is None:
        assert (Fraction(1) / (rate * tb)).denominator == 1, "time base must hold the frame step exactly"

    def configure(vs) -> None:
        if rotation or hflip:
            vs.set_display_rotation(rotation, hflip=hflip)
        if colour is not None:
            cc = vs.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = colour
        if language:
            vs.metadata["language"] = language

    reformat = None
    if colour is not None:
        reformat = {"dst_colorspace": {1: 1, 5: 5, 6: 5, 9: 9}.get(colour[2]), "dst_color_range": colour[3] or None}
    return write_video(path, frames, rate, codec=codec, pix_fmt=pix_fmt, time_base=tb,
                       pts=list(pts) if pts is not None else None, container_options=options, gop=gop,
                       crf=12 if codec in ("libx264", "libx265") else None, reformat=reformat, configure=configure,
                       audio=audio)


def real_frames(name: str, n: int, width: int, height: int, start: int = 0) -> list[np.ndarray]:
    """``n`` consecutive frames of a real clip (``01_dog.mp4``, ``02_cups.mp4``, ``03_blocks.mp4``),
    downscaled to ``width`` x ``height`` RGB: read from ``tests/assets/clips/{stem}_{W}x{H}.png``, the
    first 6 frames of the shared clip area-downscaled to that size and stacked top to bottom."""
    import cv2

    path = CLIPS / f"{Path(name).stem}_{width}x{height}.png"
    strip = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert strip is not None, f"missing test asset {path}: add the size to scripts/make_test_assets.py"
    frames = np.split(cv2.cvtColor(strip, cv2.COLOR_BGR2RGB), strip.shape[0] // height, axis=0)
    assert start + n <= len(frames), f"{path} holds {len(frames)} frames, not {start + n}"
    return [f.copy() for f in frames[start:start + n]]


def decode_all(path: Path, fmt: str | None = None) -> list:
    """Decoded frames of the first video stream (:func:`vidrestore.io.clips.video_frames`): arrays in ``fmt``
    or the av.VideoFrames."""
    from vidrestore.io.clips import video_frames

    frames = list(video_frames(path))
    return [f.to_ndarray(format=fmt) for f in frames] if fmt else frames


def packet_times(path: Path, kind: str = "video") -> tuple[list[int], list[int], Fraction]:
    """(sorted pts, durations, time base) of every non-empty packet of the first ``kind`` stream."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        pk = [(p.pts, p.duration) for p in c.demux(s) if p.size and p.pts is not None]
        tb = Fraction(s.time_base)
    pk.sort()
    return [p for p, _ in pk], [d for _, d in pk], tb


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """make_clip(name="in.mp4", **write_clip kwargs) -> path of a fresh clip in tmp_path."""

    def _make(name: str = "in.mp4", frames: Sequence[np.ndarray] | None = None, **kw) -> Path:
        return write_clip(tmp_path / name, frames, **kw)

    return _make


def nonzero_tiny_model(seed: int = 1234):
    """The tiny flow-prior network with random weights, its zero-initialised corrections and residuals
    (zero as built: the network would be exactly its prior) random too, as a trained model's would be."""
    import torch

    from vidrestore.model import build_prior_model

    torch.manual_seed(seed)
    model = build_prior_model("tiny")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not bool(p.any()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model():
    return nonzero_tiny_model()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_model) -> Path:
    """The tiny random-weight model saved as a weights file, for ``--weights PATH``."""
    from vidrestore.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "tiny-random.safetensors"
    save_weights(tiny_model, path)
    return path


def make_engine(model, device: str = "cpu", dtype=None, ensemble: int = 1, **engine_kw):
    """An Engine over an in-memory ``model`` (set up by the one run path, ``runtime.load``)."""
    import torch

    from vidrestore import runtime
    from vidrestore.config import RunOptions
    from vidrestore.engine import Engine, EngineConfig

    rt = runtime.load(RunOptions(ensemble=ensemble), model=model, device=torch.device(device),
                      dtype=dtype if dtype is not None else torch.float32)
    return Engine(rt, EngineConfig(**engine_kw))


@pytest.fixture
def shared_dir():
    """A folder other users can search (pytest's own temp folders are private to their user): for the
    tests that run vidrestore as another uid."""
    base = Path(tempfile.mkdtemp(prefix="vidrestore-perm-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
