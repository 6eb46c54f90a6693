"""``vidrestore info``: a video's streams, size, frame rate, frame count, duration, CFR/VFR."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vidrestore.cli.enhance import OneLineErrorsCommand
from vidrestore.config import format_rate


@click.command("info", cls=OneLineErrorsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input", type=click.Path(path_type=Path, readable=False))  # probe's checks: exit 3, not click's 2
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info(input: Path, as_json: bool) -> None:
    """Show INPUT's streams, size, frame rate (exact), frame count, duration and CFR/VFR.

    The video packets are scanned (not decoded) for an exact frame count.
    """
    from vidrestore.io.logs import quiet_ffmpeg
    from vidrestore.io.probe import probe

    quiet_ffmpeg()
    vi = probe(input, scan=True)
    if as_json:
        click.echo(json.dumps(vi.to_json_dict(), indent=2, default=str))
        return
    click.echo(format_info(vi))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _container_name(vi) -> str:
    names = vi.container.split(",")
    ext = Path(vi.path).suffix.lower().lstrip(".")
    return ext if ext in names else names[0]


def format_info(vi) -> str:
    cfr = {True: "constant frame rate (CFR)", False: "variable frame rate (VFR)",
           None: "frame rate mode unknown"}[vi.cfr]
    count = f"{vi.frame_count}" + ("" if vi.frame_count_exact else " (estimated)")
    duration = f"{vi.duration:.3f} s" if vi.duration is not None else "unknown"
    rows = [
        ("file", f"{vi.path} ({_container_name(vi)}, {_size(vi.size_bytes)})"),
        ("video", f"stream #{vi.video_index}: {vi.codec}, {vi.width}x{vi.height}, {vi.pix_fmt} ({vi.bit_depth}-bit)"),
        ("frame rate", f"{format_rate(vi.rate)} fps (= {float(vi.rate):.3f}), {cfr}"),
        ("frames", count),
        ("duration", duration),
        ("colour", vi.colour.describe()),
    ]
    if vi.rotation:
        rows.append(("rotation", f"{vi.rotation} degrees"))
    if vi.sample_aspect_ratio and vi.sample_aspect_ratio != 1:
        rows.append(("pixel aspect", f"{vi.sample_aspect_ratio.numerator}:{vi.sample_aspect_ratio.denominator}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k + ':':<{width + 1}} {v}" for k, v in rows]
    lines.append("streams:")
    for s in vi.streams:
        tags = (s.detail, f"[{s.language}]" if s.language else "", f'"{s.title}"' if s.title else "")
        extra = " ".join(x for x in tags if x)
        lines.append(f"  #{s.index} {s.type:<8} {s.codec or '-':<10} {extra}".rstrip())
    for problem in (vi.truncation(), vi.damage()):
        if problem:
            lines.append(f"warning: {problem}")
    return "\n".join(lines)
