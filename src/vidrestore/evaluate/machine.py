"""The machine a measurement ran on and the memory it used: peak and current RSS, an RSS sampler, and the
hardware and software versions, for ``vidrestore bench`` and the scripts that time things."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
import time
from typing import Any

import av
import torch


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MB (ru_maxrss: KB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def current_rss_mb() -> float | None:
    """The process's resident set size now, in MB (Linux /proc only; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Samples the current RSS on a background thread while a block runs (``with RssSampler() as s``);
    ``halves()`` gives the peaks of the first and second half of the block's duration."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vidrestore-rss", daemon=True)

    def _loop(self) -> None:
        while True:
            rss = current_rss_mb()
            if rss is None:
                return
            self.samples.append((time.perf_counter(), rss))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "RssSampler":
        self._t0 = time.perf_counter()
        rss = current_rss_mb()
        if rss is not None:
            self.samples.append((self._t0, rss))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._t1 = time.perf_counter()
        rss = current_rss_mb()  # a last sample, so that even a very short block has both halves
        if rss is not None:
            self.samples.append((self._t1, rss))

    def halves(self) -> tuple[float, float] | None:
        mid = (self._t0 + self._t1) / 2
        first = [r for t, r in self.samples if t < mid]
        second = [r for t, r in self.samples if t >= mid]
        if not first or not second:
            return None
        return max(first), max(second)


def hardware_info(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_threads": os.cpu_count(),
        "cpu_threads_usable": affinity,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": None,
        "gpu_memory_gb": None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "pyav": av.__version__,
        "ffmpeg_libavcodec": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
    elif device.type == "mps":
        info["gpu"] = "Apple MPS"
    return info
