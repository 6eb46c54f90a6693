"""vidrestore: joint deblurring and frame interpolation for video.

``vidrestore.load_model``, ``vidrestore.enhance`` and ``vidrestore.enhance_frames`` (see :mod:`vidrestore.api`)
are loaded on first use, so that ``import vidrestore`` and ``vidrestore --version`` stay instant.
"""

from __future__ import annotations

from typing import Any

from vidrestore._version import __version__

__all__ = ["__version__", "enhance", "enhance_frames", "load_model"]
_API = ("enhance", "enhance_frames", "load_model")


def __getattr__(name: str) -> Any:  # PEP 562: the API (torch, PyAV) is imported when first used
    if name in _API:
        from vidrestore import threads

        threads.passive_waits()  # before torch loads OpenMP, which reads its wait policy once, at load
        from vidrestore import api

        return getattr(api, name)
    raise AttributeError(f"module 'vidrestore' has no attribute {name!r}")
