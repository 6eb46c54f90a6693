"""``vidrestore eval``: protocols, baselines and metrics to score the model against sharp ground truth.

* :mod:`~vidrestore.evaluate.protocols`: which source frames become inputs and which are truth
* :mod:`~vidrestore.evaluate.baselines`: repeat, blend, DIS optical flow, ffmpeg minterpolate
* :mod:`~vidrestore.evaluate.metrics`: PSNR and SSIM
* :mod:`~vidrestore.evaluate.sources`: reading sharp footage (videos, frame folders)
* :mod:`~vidrestore.evaluate.runner`: running every method on the same inputs and scoring them
* :mod:`~vidrestore.evaluate.panels`: side-by-side comparison crops

Submodules are imported on demand (nothing heavy here).
"""

from __future__ import annotations
