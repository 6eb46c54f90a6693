"""The bench's headline: ``vidrestore enhance`` against ffmpeg's minterpolate, both timed as a user runs them.

Each tool is a whole process (start-up, imports, model load, decode, work, encode, mux) on the same clip, with
the same encoder settings; the two alternate A B A B ... so that a drift of the machine falls on both. Reported:
each tool's median, fastest and slowest seconds, its peak resident memory (the child's own, from the kernel),
and the ratio of the medians with the spread of the per-round ratios.

minterpolate runs as the ``ffmpeg`` command when one is found; else (no ffmpeg installed) as a process of this
package that drives the same libavfilter filter through PyAV (:func:`vidrestore.evaluate.baselines.minterpolate_file`),
and the report says which.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

from vidrestore.config import RunOptions
from vidrestore.errors import UsageError


@dataclass(frozen=True)
class Command:
    label: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_mb: float


def run_timed(argv: Sequence[str], poll: float = 0.02) -> Timed:
    """Run ``argv`` to its end; its wall time and its peak resident memory. The peak is the child's own
    high-water mark (``VmHWM``, read while it runs): the ``ru_maxrss`` that ``wait4`` reports would hold this
    process's size too, which a child keeps from the fork across its exec. A failure raises
    :class:`UsageError` with the command's last line of errors."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        peak_kb = 0
        while proc.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(proc.pid))
            time.sleep(poll)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise UsageError(f"bench: {Path(argv[0]).name} {' '.join(argv[1:3])} ... failed "
                             f"(exit {proc.returncode}): {lines[-1][:200] if lines else 'no message'}")
    return Timed(seconds, peak_kb / 1024)


def _high_water_kb(pid: int) -> int:
    """The process's peak resident memory so far (kB), 0 where it cannot be read (it ended, or no /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def alternate(a: Command, b: Command, rounds: int, say: Callable[[str], None] = lambda _m: None,
              runner: Callable[[Sequence[str]], Timed] = run_timed) -> dict[str, Any]:
    """``a`` and ``b`` run in turn, ``rounds`` times each (A B A B ...)."""
    if rounds < 1:
        raise UsageError(f"--rounds {rounds}: must be at least 1")
    runs: dict[str, list[Timed]] = {a.label: [], b.label: []}
    for r in range(rounds):
        for cmd in (a, b):
            say(f"round {r + 1} of {rounds}: {cmd.label}")
            runs[cmd.label].append(runner(cmd.argv))
    out: dict[str, Any] = {"rounds": rounds, "order": "alternating, " + " ".join(["A B"] * min(rounds, 3))
                           + (" ..." if rounds > 3 else "")}
    for key, cmd in (("a", a), ("b", b)):
        times = [t.seconds for t in runs[cmd.label]]
        out[key] = {"label": cmd.label, "argv": list(cmd.argv), "seconds": times,
                    "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                    "peak_rss_mb": max(t.peak_rss_mb for t in runs[cmd.label])}
    ratios = [x.seconds / y.seconds for x, y in zip(runs[a.label], runs[b.label]) if y.seconds > 0]
    out["ratio_of_medians"] = out["a"]["median_s"] / out["b"]["median_s"] if out["b"]["median_s"] > 0 else None
    out["ratio_min"] = min(ratios) if ratios else None
    out["ratio_max"] = max(ratios) if ratios else None
    return out


def find_ffmpeg(explicit: str | None = None) -> str | None:
    """The ffmpeg command: ``explicit`` (a path or a name on PATH), else ``ffmpeg`` on PATH, else None."""
    if explicit is not None:
        found = shutil.which(explicit)
        if found is None:
            raise UsageError(f"--ffmpeg {explicit}: no such program")
        return found
    return shutil.which("ffmpeg")


def enhance_command(clip: Path, output: Path, factor: int, mode: str, run: RunOptions, codec: str,
                    threads: int | None) -> Command:
    """``vidrestore enhance`` as a user types it (this interpreter, this package), with the run's options."""
    argv = [sys.executable, "-m", "vidrestore", "enhance", str(clip), "-o", str(output), "--fps-x", str(factor),
            "--mode", mode, "--codec", codec, "--overwrite", *run.cli_args()]
    if threads is not None:
        argv += ["--threads", str(threads)]
    return Command("vidrestore enhance", tuple(argv))


def minterpolate_command(clip: Path, output: Path, factor: int, rate: Fraction, codec: str, crf: int | None,
                         preset: str | None, ffmpeg: str | None) -> Command:
    """ffmpeg's minterpolate (mci) at ``factor`` times ``rate``, encoding as enhance does (codec, CRF, preset,
    yuv420p), audio copied. Without an ffmpeg command: the same filter through PyAV, in its own process."""
    if ffmpeg is None:
        argv = [sys.executable, "-m", "vidrestore.evaluate.minterpolate_run", str(clip), str(output), str(factor)]
        return Command("minterpolate (PyAV)", tuple(argv))
    out_rate = rate * factor
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip),
            "-vf", f"minterpolate=fps={out_rate.numerator}/{out_rate.denominator}:mi_mode=mci",
            "-c:v", codec, "-pix_fmt", "yuv420p"]
    if crf is not None:
        argv += ["-crf", str(crf)]
    if preset is not None:
        argv += ["-preset", preset]
    argv += ["-c:a", "copy", str(output)]
    return Command("ffmpeg minterpolate", tuple(argv))


__all__ = ["Command", "Timed", "alternate", "enhance_command", "find_ffmpeg", "minterpolate_command", "run_timed"]
