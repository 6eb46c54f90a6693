"""The window cache of a training run: the expensive part of a training sample (blur made from the scene's
own motion, the DIS prior) made once and stored in shards, so that a training step is compute.

A cache is a folder::

    settings.json        what its windows were made with (footage, blur, crop, prior, format)
    val/                 a fixed validation set from the held-out frames (and seeded synthetic scenes)
    shard-000123/        N windows: one .npy per field of :class:`~vidrestore.train.prior_data.Windows`

Each shard is written to a temporary folder and renamed, so a reader never sees half a shard and a filler
stopped at any moment leaves a usable cache. When the settings change, the shards are made again. Once the
cache holds ``size`` windows, a filler keeps adding fresh shards and deletes the oldest ones: over a long
run the network sees far more windows than the cache holds at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from vidrestore.errors import UsageError
from vidrestore.train.prior_data import (
    KINDS, BlurConfig, RealSampler, SyntheticSampler, Windows, footage_paths, footage_textures, load_footage,
)

FORMAT = 2  # 2: a drawn blur length's exposure is at most the stride (format 1 let it reach 8 frames at any)
KIND_NAMES = {v: k for k, v in KINDS.items()}
# the prior the windows carry: what vidrestore.prior computes at run time (vidrestore.flow.dis_flow)
PRIOR = {"method": "dis", "preset": "medium", "scale": 1.0}


@dataclass(frozen=True)
class CacheSettings:
    """Everything a cached window depends on. Paths are resolved; a change of any field remakes the cache."""

    footage: tuple[str, ...]
    holdout: tuple[str, ...]
    holdout_frames: int
    max_side: int
    max_frames: int
    crop: int  # stored window size; training crops from it
    mix: tuple[tuple[str, float], ...]  # sources of the shards
    blur: BlurConfig
    shard: int = 64  # windows per shard
    synthetic_crop: int = 128
    synthetic_textures: float = 0.0  # share of synthetic textures cut from the footage's frames (0: procedural)

    def to_json(self) -> dict:
        data = json.loads(json.dumps(asdict(self)))
        if not data["synthetic_textures"]:  # (off: the caches made before it keep their fingerprint)
            del data["synthetic_textures"]
        # a blur setting at 0 is a kind of blur not used: left out, so that a kind added later (off by default)
        # leaves the caches made before it as they are
        data["blur"] = {k: v for k, v in data["blur"].items() if v != 0}
        return {"format": FORMAT, "prior": PRIOR, **data}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def _write(folder: Path, windows: Windows) -> None:
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name in Windows.FIELDS:
            np.save(tmp / f"{name}.npy", getattr(windows, name))
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_windows(folder: Path, mmap: bool = True) -> Windows:
    return Windows(*(np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None) for name in Windows.FIELDS))


class WindowCache:
    """A cache folder for ``settings``."""

    def __init__(self, folder: str | Path, settings: CacheSettings) -> None:
        self.folder = Path(folder)
        self.settings = settings

    def prepare(self) -> bool:
        """Make the folder ready for ``settings``: True if its windows were kept, False if it was (re)made."""
        meta = self.folder / "settings.json"
        want = {"fingerprint": self.settings.fingerprint(), **self.settings.to_json()}
        try:
            have = json.loads(meta.read_text())
        except (OSError, ValueError):
            have = None
        if have is not None and have.get("fingerprint") == want["fingerprint"]:
            return True
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps(want, indent=1, sort_keys=True))
        os.replace(tmp, meta)
        return False

    def shards(self) -> list[Path]:
        """Complete shards, oldest first."""
        return sorted(p for p in self.folder.glob("shard-*") if p.is_dir() and "." not in p.name)

    def count(self) -> int:
        return sum(int(np.load(p / "kind.npy", mmap_mode="r").shape[0]) for p in self.shards())

    def add(self, windows: Windows) -> Path:
        shards = self.shards()
        number = int(shards[-1].name.split("-")[1]) + 1 if shards else 0
        path = self.folder / f"shard-{number:06d}"
        _write(path, windows)
        return path

    @property
    def val_folder(self) -> Path:
        return self.folder / "val"


class WindowMaker:
    """Makes windows for a cache: footage decoded once, blurred and given its prior per window."""

    def __init__(self, settings: CacheSettings, threads: int = 1, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        weights = dict(settings.mix)
        self.sources = [s for s in KINDS if weights.get(s, 0) > 0]
        self.weights = torch.tensor([weights[s] for s in self.sources])
        self.real = None
        self.threads = threads
        if "real" in self.sources or "interp" in self.sources:
            held = {str(Path(p).resolve()) for p in footage_paths(settings.holdout)}
            paths = footage_paths(settings.footage)
            skips = [settings.holdout_frames if str(p.resolve()) in held else 0 for p in paths]
            t0 = time.monotonic()
            videos = load_footage(paths, settings.max_side, skips, max_frames=settings.max_frames)
            log(f"footage: {len(videos)} shots from {len(paths)} videos, "
                f"{sum(v.shape[0] for v in videos)} frames ({time.monotonic() - t0:.0f} s)")
            self.real = RealSampler(videos, settings.blur, threads)
        self.synthetic = None
        if "synthetic" in self.sources:
            bank = None
            if settings.synthetic_textures > 0:
                if self.real is None:
                    raise UsageError("synthetic_textures: the textures come from the footage; the mix needs real "
                                     "or interp windows")
                bank = footage_textures(self.real.videos)
            self.synthetic = SyntheticSampler(threads=threads, textures=bank,
                                              real_fraction=settings.synthetic_textures)

    def make(self, source: str, count: int, generator: torch.Generator) -> Windows:
        if source == "synthetic":
            assert self.synthetic is not None
            return self.synthetic.sample(count, self.settings.synthetic_crop, generator)
        assert self.real is not None
        return self.real.sample(count, self.settings.crop, generator, sharp=source == "interp")

    def shard(self, generator: torch.Generator, group: int = 8, source: str | None = None) -> Windows:
        """One shard's windows, all of one source (drawn by the mix unless given), in groups of ``group``
        windows (one stride each)."""
        n = self.settings.shard
        if source is None:
            source = self.sources[int(torch.multinomial(self.weights, 1, generator=generator))]
        return Windows.concat([self.make(source, min(group, n - i), generator) for i in range(0, n, group)])


# The ``motion`` validation source: held-out frames blurred by their own motion only, as the release checks of
# real motion blur blur them (`vidrestore eval --protocol deblur --stride 16 --exposure 15 --blur-length L`):
# every 16th frame, the scene's motion over the exposure that smears its moving parts 8-32 px, no shake, no noise
MOTION_BLUR = BlurConfig(strides=(16,), sharp_prob=0.0, temporal_prob=1.0, shake_prob=0.0, length_prob=1.0,
                         length=(8.0, 32.0), max_exposure=15.0, noise=0.0)
MOTION_WINDOWS = 48  # most crops hold little motion, as most of a frame does: more windows than the others


def _holdout_videos(settings: CacheSettings) -> list[torch.Tensor]:
    """The held-out videos' first ``holdout_frames``: what validation windows are cut from."""
    return load_footage(footage_paths(settings.holdout), settings.max_side, 0, max_frames=settings.holdout_frames)


def motion_validation(settings: CacheSettings, seed: int = 4321) -> Windows | None:
    """The ``motion`` validation windows (:data:`MOTION_BLUR`), or None where the held-out frames are too few
    for its stride."""
    try:
        sampler = RealSampler(_holdout_videos(settings), MOTION_BLUR, threads=1)
    except ValueError:
        return None
    g = torch.Generator().manual_seed(seed)
    return Windows.concat([sampler.sample(8, settings.crop, g) for _ in range(MOTION_WINDOWS // 8)])


def validation_windows(settings: CacheSettings, sources: Sequence[str], per_source: int = 24, seed: int = 1234,
                       log: Callable[[str], None] = print) -> dict[str, Windows]:
    """A fixed validation set: real windows from the held-out frames only (the first ``holdout_frames`` of
    each held-out video, which training never sees), and seeded synthetic scenes. (``motion`` is made by
    :func:`motion_validation`.)"""
    out: dict[str, Windows] = {}
    g = torch.Generator().manual_seed(seed)
    real_sources = [s for s in sources if s not in ("synthetic", "motion")]
    if real_sources and settings.holdout:
        try:
            sampler = RealSampler(_holdout_videos(settings), replace(settings.blur, motion_crops=0.0),
                                  threads=1)  # uniform crops
        except ValueError:
            raise UsageError(f"the held-out frames (holdout_frames = {settings.holdout_frames}) are too few for "
                             f"validation windows: {4 * max(settings.blur.strides) + 4} are needed") from None
        for s in real_sources:
            out[s] = Windows.concat([sampler.sample(8, settings.crop, g, sharp=s == "interp")
                                     for _ in range(per_source // 8)])
    if "synthetic" in sources:
        synth = SyntheticSampler(threads=1)
        out["synthetic"] = Windows.concat([synth.sample(8, settings.synthetic_crop, g) for _ in range(per_source // 8)])
    log(f"validation windows: {', '.join(f'{k} {len(v)}' for k, v in out.items())}")
    return out


def ensure_validation(cache: WindowCache, sources: Sequence[str],
                      log: Callable[[str], None] = print) -> dict[str, Windows]:
    """The cache's validation windows of ``sources``, made on first use. ``motion`` (see :data:`MOTION_BLUR`)
    is made on its own, so that a cache made before it keeps its other validation windows."""
    folder = cache.val_folder
    base = [s for s in sources if s != "motion"]
    if not all((folder / s / "kind.npy").is_file() for s in base):
        made = validation_windows(cache.settings, base, log=log)
        for s, w in made.items():
            _write(folder / s, w)
    if "motion" in sources and not (folder / "motion" / "kind.npy").is_file() and cache.settings.holdout:
        motion = motion_validation(cache.settings)
        if motion is None:
            log("validation windows: too few held-out frames for the motion-blur windows (stride 16)")
        else:
            try:
                _write(folder / "motion", motion)
            except OSError:  # another process of the run made them first
                pass
            log(f"validation windows: motion {len(motion)}")
    return {s: read_windows(folder / s, mmap=False) for s in sources if (folder / s / "kind.npy").is_file()}


def fill(cache: WindowCache, maker: WindowMaker, target: int, generator: torch.Generator,
         minutes: float | None = None, keep_going: bool = False, log: Callable[[str], None] = print,
         should_stop: Callable[[], bool] = lambda: False) -> int:
    """Add shards until the cache holds ``target`` windows; with ``keep_going``, go on adding fresh shards and
    deleting the oldest (the cache stays at ``target``) until ``minutes`` are spent. Returns shards made."""
    start = time.monotonic()
    made = 0
    while not should_stop():
        if minutes is not None and time.monotonic() - start > minutes * 60:
            break
        shards = cache.shards()
        have = len(shards) * cache.settings.shard
        if have >= target and not keep_going:
            break
        t0 = time.monotonic()
        held = {KIND_NAMES[int(np.load(p / "kind.npy", mmap_mode="r")[0])] for p in shards}
        missing = [s for s in maker.sources if s not in held]  # every source first, then by the mix
        cache.add(maker.shard(generator, source=missing[0] if missing else None))
        made += 1
        while len(cache.shards()) * cache.settings.shard > target:
            shutil.rmtree(cache.shards()[0], ignore_errors=True)
        log(f"cache: shard {made} made in {time.monotonic() - t0:.1f} s "
            f"({min(have + cache.settings.shard, target)} of {target} windows)")
    return made
