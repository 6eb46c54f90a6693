"""``vidrestore eval``: protocols, baselines and metrics to score the model against sharp ground truth.

* :mod:`~vidrestore.evaluate.protocols`: which source frames become inputs and which are truth
* :mod:`~vidrestore.evaluate.baselines`: repeat, blend, DIS optical flow, ffmpeg minterpolate
* :mod:`~vidrestore.evaluate.metrics`: PSNR and SSIM
* :mod:`~vidrestore.evaluate.sources`: reading sharp footage (videos, frame folders)
* :mod:`~vidrestore.evaluate.runner`: running every method on the same inputs and scoring them
* :mod:`~vidrestore.evaluate.panels`: side-by-side comparison crops
* :mod:`~vidrestore.evaluate.bench`: ``vidrestore bench``, engine and end-to-end speed and memory

Submodules are imported on demand (nothing heavy here).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from vidrestore.config import RunOptions


def flat_settings(cfg: Any) -> dict[str, Any]:
    """A config dataclass's fields as a report's settings, its :class:`~vidrestore.config.RunOptions`
    spliced in at its place (``eval`` and ``bench`` reports list the run options beside their own)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, RunOptions):
            out.update(dataclasses.asdict(value))
        elif isinstance(value, os.PathLike):
            out[f.name] = os.fspath(value)
        else:
            out[f.name] = value
    return out
