"""``vidrestore bench``: engine and end-to-end throughput, memory, and ffmpeg minterpolate for scale.

torch and PyAV are imported only inside the command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vidrestore.cli.options import run_options, run_options_from, setup_threads, threads_option
from vidrestore.config import MODES
from vidrestore.errors import UsageError


def _num(v, fmt: str = ".1f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def render(report: dict):
    from rich import box
    from rich.table import Table

    s, hw, m = report["settings"], report["hardware"], report["model"]
    k = s["effective_factor"]
    title = (f"{s['resolution']}, {k}x, {s['mode']} mode, {hw['device']} {s['dtype']}, batch {s['batch']}, "
             f"{m['model']} ({m['parameters'] / 1e6:.2f} M parameters)")
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("part", "fps out", "ms/frame in", "s", "GPU MB", "RSS MB"):
        t.add_column(col, justify="left" if col == "part" else "right", no_wrap=True)
    e = m["engine"]
    t.add_row("engine", _num(e["output_fps"]), _num(e["ms_per_input_frame"]), _num(e["seconds"], ".2f"),
              _num(m["cuda_peak_allocated_mb"], ".0f"), _num(m["peak_rss_mb"], ".0f"))
    p = report.get("pipeline")
    if p:
        t.add_row("enhance", _num(p["output_fps"]), _num(p["ms_per_input_frame"]),
                  _num(p["seconds"], ".2f"), _num(p["cuda_peak_allocated_mb"], ".0f"), _num(p["peak_rss_mb"], ".0f"))
        for stage, sec in (p.get("stages_s") or {}).items():
            share = f" ({100 * sec / p['seconds']:.0f}%)" if p["seconds"] > 0 else ""
            t.add_row(f"  {stage} alone", "", "", f"{sec:.2f}{share}", "", "")
    mi = report.get("minterpolate")
    if mi:
        t.add_row("minterpolate", _num(mi["output_fps"]), _num(1e3 * mi["seconds"] / s["frames"]),
                  _num(mi["seconds"], ".2f"), "", "")
    t.caption = (f"engine: the model as enhance runs it, uint8 frames in and out; enhance: decode + model + encode; "
                 f"minterpolate: ffmpeg mci, decode + filter + encode. "
                 f"{m['gmacs_per_output_frame']:.3g} GMACs per output frame "
                 f"({m['encode_gmacs_per_frame']:.3g} encode + {m['restore_gmacs_per_window']:.3g} restore "
                 "per input frame)")
    if mi and mi.get("time_ratio_ours_over_minterpolate") is not None:
        t.caption += f"; enhance takes {mi['time_ratio_ours_over_minterpolate']:.2f}x the time of minterpolate"
    if p and p.get("rss_mb_first_half") is not None:
        t.caption += (f"; enhance RSS peak {p['rss_mb_first_half']:.0f} MB in the first half of the run, "
                      f"{p['rss_mb_second_half']:.0f} MB in the second")
    hw_line = (f"CPU: {hw['cpu']} ({hw['cpu_threads']} threads, torch uses {hw['torch_threads']}); "
               f"GPU: {hw['gpu'] or 'none'}; torch {hw['torch']}, CUDA {hw['cuda'] or '-'}, PyAV {hw['pyav']}")
    return t, hw_line


def headline_lines(report: dict) -> list[str]:
    """The headline (whole commands, alternating) as lines of text."""
    h = report.get("headline")
    if not h:
        return [report["headline_note"]] if report.get("headline_note") else []
    c, e = h["clip"], h["encoder"]
    secs = f", {c['seconds']:.1f} s" if c.get("seconds") else ""
    lines = [f"Headline: whole commands on one clip ({c['path']}, {c['resolution']}, {c['frames']} frames{secs}), "
             f"{h['rounds']} rounds alternating, both encoding {e['codec']}"
             + (f" crf {e['crf']}" if e.get("crf") is not None else "")
             + (f" {e['preset']}" if e.get("preset") else "")]
    for side in ("a", "b"):
        r = h[side]
        lines.append(f"  {r['label']}: median {r['median_s']:.2f} s "
                     f"(fastest {r['min_s']:.2f}, slowest {r['max_s']:.2f}), "
                     f"peak RSS {r['peak_rss_mb']:.0f} MB")
    if h.get("ratio_of_medians") is not None:
        lines.append(f"  {h['a']['label']} takes {h['ratio_of_medians']:.2f}x the time of {h['b']['label']} "
                     f"(per round {h['ratio_min']:.2f}-{h['ratio_max']:.2f}x)")
    return lines


@click.command("bench")
@click.option("--resolution", default=None, metavar="WxH",
              help="Frame size [default: the --input file's, else 1280x720].")
@click.option("--input", "input_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A real clip for the headline (at least 10 s is best) [default: a generated 10 s clip].")
@click.option("--rounds", type=int, default=3, show_default=True, help="Headline: runs of each command, alternating.")
@click.option("--headline-seconds", type=float, default=10.0, show_default=True,
              help="Headline: length of the generated clip.")
@click.option("--ffmpeg", default=None, help="The ffmpeg command for the headline [default: ffmpeg on PATH; without "
                                              "one, the same filter through PyAV in a process of its own].")
@click.option("--no-headline", is_flag=True, help="Skip the headline (the whole commands).")
@click.option("--fps-x", "factor", type=int, default=2, show_default=True, help="Frame-rate multiplier K.")
@click.option("--mode", type=click.Choice(MODES), default="joint", show_default=True)
@run_options
@click.option("--size", default=None,
              help="Use random weights of this size of the flow-prior network instead (tiny, small, default).")
@click.option("--frames", type=int, default=32, show_default=True, help="Input frames timed, and length of the clip.")
@click.option("--warmup", type=int, default=4, show_default=True, help="Input frames run before timing.")
@click.option("--no-pipeline", is_flag=True, help="Skip the end-to-end enhance run.")
@click.option("--no-minterpolate", is_flag=True, help="Skip ffmpeg minterpolate.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@threads_option
def bench(resolution, input_path, rounds, headline_seconds, ffmpeg, no_headline, factor, mode, size, frames, warmup,
          no_pipeline, no_minterpolate, as_json, threads, **run_kwargs) -> None:
    """Measure speed and memory against ffmpeg minterpolate.

    First the headline: `vidrestore enhance` and the `ffmpeg` minterpolate command, each run as a whole process
    on the same clip, alternating, with the median, the spread and each one's peak memory. Then the warm,
    in-process breakdown: the engine alone, enhance's decode, model and encode.

    \b
    Examples:
      vidrestore bench --input clip.mp4 --fps-x 2 --mode interp --device cpu
      vidrestore bench --resolution 1920x1080 --fps-x 4 --device cuda --precision bf16 --batch 4
      vidrestore bench --size small --device cpu --resolution 640x360 --frames 16 --json
    """
    from rich.console import Console

    setup_threads(threads)  # before torch starts its thread pool
    from vidrestore.evaluate.bench import BenchConfig, run_bench
    from vidrestore.evaluate.sources import parse_size

    if resolution is None and input_path is not None:
        from vidrestore.io.probe import probe

        info = probe(input_path)
        parsed = (info.width // 2 * 2, info.height // 2 * 2)
    else:
        parsed = parse_size(resolution or "1280x720")
        if parsed is None:
            raise UsageError(f"--resolution {resolution}: expected WxH")
    cfg = BenchConfig(width=parsed[0], height=parsed[1], factor=factor, mode=mode, run=run_options_from(run_kwargs),
                      size=size, frames=frames, warmup=warmup, pipeline=not no_pipeline,
                      minterpolate=not no_minterpolate,
                      headline=not no_headline, input=input_path, rounds=rounds, headline_seconds=headline_seconds,
                      ffmpeg=ffmpeg, threads=threads)
    err = Console(stderr=True, highlight=False)
    with err.status("benchmarking") as status:
        report = run_bench(cfg, log=lambda msg: status.update(msg))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    out = Console(highlight=False)
    for line in headline_lines(report):
        out.print(line)
    table, hw_line = render(report)
    table.title = "Warm breakdown (in-process, the model loaded once): " + table.title
    out.print(table)
    out.print(hw_line)
