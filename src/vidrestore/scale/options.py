"""How a run is spread over workers and chunks, and what became of each file: light (no torch), for the CLI
to use before the model is loaded."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidrestore.errors import VidrestoreError

RAY_EXTRA = "pip install 'vidrestore[ray]'"  # what installs Ray, named by the error of a Ray-only option
RAY_MISSING = f"--workers above 1 and --ray run on Ray, which is not installed: {RAY_EXTRA}"


def ray_installed() -> bool:
    """Whether Ray can be imported (found without importing it: this stays light)."""
    return importlib.util.find_spec("ray") is not None


@dataclass
class FileResult:
    input: Path
    output: Path
    status: str  # "done", "failed" or "skipped"
    message: str = ""
    error: VidrestoreError | None = None
    summary: Any = None  # pipeline.RunSummary
