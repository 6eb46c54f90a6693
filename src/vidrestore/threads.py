"""The one place that sets how many CPU threads the work uses: torch's intra-op pool, OpenCV's, and
(through :class:`vidrestore.plan.Plan`'s ``threads``) the PyAV decoder's and encoder's ``thread_count``.

``--threads N`` defaults to the cores this process may use: its CPU affinity
(``os.sched_getaffinity``) capped by the cgroup v2 CPU quota (``/sys/fs/cgroup/cpu.max``: quota and
period in microseconds, ``max`` for none), rounded up. Light: torch and cv2 are imported only by
:func:`apply`, which the CLI calls once per run, never at import.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def affinity_cpus() -> int:
    """The CPUs this process may run on (all of them where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def quota_cpus(cpu_max: Path = CPU_MAX) -> int | None:
    """CPUs' worth of time the cgroup v2 quota allows (rounded up), or None for no quota."""
    try:
        fields = Path(cpu_max).read_text().split()
    except OSError:
        return None
    if not fields or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100_000
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def available_cpus(cpu_max: Path = CPU_MAX) -> int:
    """The cores available to this process: affinity, capped by the cgroup quota."""
    n = affinity_cpus()
    q = quota_cpus(cpu_max)
    return min(n, q) if q is not None else n


def resolve(requested: int | None, cpu_max: Path = CPU_MAX) -> int:
    """``--threads``: the number given, else the cores available."""
    return int(requested) if requested is not None else available_cpus(cpu_max)


def passive_waits() -> None:
    """Idle OpenMP threads sleep instead of spinning (stealing cores from the reader and writer
    threads). Effective only when set before torch is imported: OpenMP reads its wait policy once, when it is
    loaded (set afterwards, a 2-thread loop of small products with 1 ms pauses kept 1.19 cores busy, set before
    0.41). The CLI sets it first thing; the Python API (``vidrestore.enhance`` ...) when first touched."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEPT = 32 * 1024 * 1024  # glibc's largest mmap threshold (on 64-bit)


_libc = None


def _glibc():
    """glibc as a ctypes library (``mallopt``, ``malloc_trim``, and ``mallinfo2`` where it is 2.33 or later), or
    None where the C library is another (musl, macOS, Windows)."""
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                                               "keepcost")]

        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
        else:
            if hasattr(lib, "mallinfo2"):
                lib.mallinfo2.restype = MallInfo2
    return _libc or None


def keep_freed_memory(trim: int = 2 * _KEPT) -> bool:
    """Tell glibc's allocator to keep freed blocks of up to 32 MB in the heap for reuse instead of handing
    them back to the kernel, and to keep up to ``trim`` bytes of free heap. Tensors of the same sizes are
    allocated and freed at every step of a network; with the default, dynamic threshold they can be mapped and
    unmapped each time, and the page faults that follow took a large share of a training step's time in the
    kernel, and twice the model's own time in enhance at 1280x720 8x joint (sys 101 s, user 54 s). The peak
    memory stays about the same: the blocks are reused, not added. Training and :func:`apply` (every run)
    call it. No-op where the C library is not glibc."""
    lib = _glibc()
    if lib is None:
        return False
    ok = lib.mallopt(_M_MMAP_THRESHOLD, _KEPT) == 1
    return lib.mallopt(_M_TRIM_THRESHOLD, trim) == 1 and ok


def release_freed_memory(keep: int) -> bool:
    """Hand the allocator's free pages back to the kernel (glibc's ``malloc_trim``) when more than ``keep``
    bytes of it are free; a no-op elsewhere. The engine calls it every few groups of windows on the CPU: the
    heap's free blocks, kept for reuse (:func:`keep_freed_memory`), fragment over a long video, and the
    process grew with them (1280x720 8x joint: 1.07 GB after 10 frames, 1.49 GB after 60, still rising).
    Trimming only past ``keep`` bounds that, without giving back, window after window, the pages the next
    window takes again. True when it trimmed."""
    lib = _glibc()
    if lib is None or not hasattr(lib, "mallinfo2") or lib.mallinfo2().fordblks <= keep:
        return False
    lib.malloc_trim(0)
    return True


# free heap a run keeps for reuse (the frames' working memory, freed and taken again window after window), and
# what training keeps (its tensors are small and many)
RUN_KEPT = 1024 * 1024 * 1024
TRAIN_KEPT = 2 * _KEPT


def network_share(total: int, mode: str, device_type: str) -> int:
    """torch's threads for a job of ``total`` threads: in interp mode on the CPU one less, left to the flow
    prior's DIS workers, the decoder and the encoder. There the prior costs about as much as the network (two DIS
    flows per input frame); with torch on both of 2 cores, each of its operations waited at its barrier for a
    thread that a DIS worker had taken the core from (the job used 1.6 of 2 cores), and one torch thread made a
    10 s 640x360 2x job 7% faster. Joint and deblur mode (the network the larger part) and GPUs keep them all."""
    if device_type == "cpu" and mode == "interp" and total >= 2:
        return total - 1
    return total


def set_network_threads(total: int, mode: str, device_type: str) -> int:
    """torch's intra-op threads for a job of ``total`` threads in ``mode`` on ``device_type``
    (:func:`network_share`); OpenCV's and the codecs' stay. Called by the run path and by the bench."""
    import torch

    n = network_share(total, mode, device_type)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


BACKGROUND_NICE = 5  # how much lower the helper threads' priority is than the network's


def background_thread() -> bool:
    """Lower the calling thread's CPU priority by :data:`BACKGROUND_NICE` (Linux, where each thread has its own nice
    value): the decoder, the encoder and the prior's workers call it. The network's thread is the critical path
    of a run; the helpers work ahead of it through their queues, so they can wait for a core. On 2 cores a 10 s
    640x360 2x interp job took 8% less time. False where it could not (another OS, or not allowed)."""
    if not sys.platform.startswith("linux"):
        return False  # elsewhere the id of a thread is no process id: setpriority would aim at another process
    try:
        tid = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + BACKGROUND_NICE))
    except (OSError, AttributeError):
        return False
    return True


def apply(threads: int, *, passive: bool = True, kept: int = RUN_KEPT) -> int:
    """The one setter of thread counts: torch's and OpenCV's, and the allocator's reuse of freed memory (up to
    ``kept`` bytes), process-wide. The CLI calls it once, before torch starts its pool (so that, with
    ``passive``, the pool's idle threads sleep rather than spin); every run calls it again from the run path
    (:func:`vidrestore.pipeline.run`), so that the Python API, folders, chunks and workers run with the same
    settings as the command (:func:`ensure`). Training asks for spinning threads (``passive=False``): passive
    waits after each of the network's many small operations made a training step 1.7x as long on 2 cores."""
    global _applied
    if passive:
        passive_waits()
    keep_freed_memory(kept)
    import cv2
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    _applied = threads
    return threads


_applied: int | None = None  # what apply() set in this process


def ensure(threads: int) -> int:
    """The run path's call: :func:`apply` unless this process was set up already (the CLI, a worker given its
    share of the cores); returns the thread count in force."""
    return _applied if _applied is not None else apply(threads)
