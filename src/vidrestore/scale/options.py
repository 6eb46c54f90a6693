"""How a run is spread over workers and chunks, and what became of each file: light (no torch), for the CLI
to use before the model is loaded."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidrestore.errors import UsageError, VidrestoreError

RAY_EXTRA = "pip install 'vidrestore[ray]'"  # what installs Ray, named by the error of a Ray-only option
RAY_MISSING = f"--workers above 1 and --ray run on Ray, which is not installed: {RAY_EXTRA}"


def ray_installed() -> bool:
    """Whether Ray can be imported (found without importing it: this stays light)."""
    return importlib.util.find_spec("ray") is not None


@dataclass(frozen=True)
class ScaleOptions:
    """How a run is spread: ``workers`` (None: one per GPU, or one), ``chunks`` per video (None: auto; 1:
    never split), ``ray``: None (a local Ray, started when there is more than one worker), "auto" or the
    address of a running cluster."""

    workers: int | None = None
    chunks: int | None = None
    ray: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers {self.workers}: must be at least 1")
        if self.chunks is not None and self.chunks < 1:
            raise UsageError(f"--chunks {self.chunks}: must be 'auto' or at least 1")


@dataclass
class FileResult:
    input: Path
    output: Path
    status: str  # "done", "failed" or "skipped"
    message: str = ""
    error: VidrestoreError | None = None
    summary: Any = None  # pipeline.RunSummary
