"""``vidrestore eval``: score the model and classical baselines against sharp ground truth.

torch, PyAV and OpenCV are imported only inside the command.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from vidrestore.cli.options import run_options, run_options_from
from vidrestore.errors import UsageError

_PROTOCOLS = ("joint", "interp", "deblur")
_MODES = ("joint", "interp", "deblur")


def default_exposure(stride: int) -> int:
    """The largest odd number of source frames shorter than the input interval (7 for stride 8)."""
    m = stride - 1 if stride % 2 == 0 else stride - 2
    return max(1, m)


def parse_methods(text: str | None, protocol: str) -> tuple[str, ...]:
    from vidrestore.evaluate.runner import DEFAULT_METHODS

    if text is None or text.strip().lower() == "all":
        # with K = 1 every baseline returns its input: one of them is enough; "adapted" comes with --adapt
        return ("model", "repeat") if protocol == "deblur" and text is None else DEFAULT_METHODS
    names = tuple(m.strip().lower() for m in text.split(",") if m.strip())
    aliases = {"dis": "dis-flow", "flow": "dis-flow", "mci": "minterpolate", "ffmpeg": "minterpolate"}
    return tuple(aliases.get(m, m) for m in names)


def _fmt(v: float | None, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def _fps(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def render_table(report: dict, per_clip: bool):
    from rich import box
    from rich.table import Table

    s = report["settings"]
    title = f"{s['protocol']} protocol: stride {s['stride']}"
    if s["protocol"] != "interp":
        title += f", exposure {s['exposure']}"
    if s.get("blur_length"):
        title += f", flow blur {s['blur_length']:g} px"
    title += f", model at {s['factor']}x in {s['mode']} mode"
    tables = []
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("method", no_wrap=True)
    for group in ("key", "inter", "all"):
        table.add_column(f"{group} PSNR", justify="right")
        table.add_column(f"{group} SSIM", justify="right")
    table.add_column("fps", justify="right")
    best = {}
    for group in ("key", "inter", "all"):
        vals = [m["mean"][group]["psnr"] for m in report["methods"].values() if m["mean"][group]["psnr"] is not None]
        best[group] = max(vals) if vals else None
    for name, m in report["methods"].items():
        row = [name]
        for group in ("key", "inter", "all"):
            p = m["mean"][group]["psnr"]
            cell = _fmt(p, 2)
            if p is not None and best[group] is not None and p == best[group] and len(report["methods"]) > 1:
                cell = f"[bold]{cell}[/bold]"
            row += [cell, _fmt(m["mean"][group]["ssim"], 4)]
        row.append(_fps(m.get("output_fps")))
        table.add_row(*row)
    clips = report["clips"]
    table.caption = (
        f"{len(clips)} clip(s), {sum(c['scored_key'] for c in clips)} key + "
        f"{sum(c['scored_inter'] for c in clips)} intermediate frames scored; mean over clips"
    )
    tables.append(table)
    if per_clip and len(clips) > 1:
        pc = Table(title="per clip: inter PSNR / SSIM (key where there is no inter)", box=box.SIMPLE_HEAD,
                   pad_edge=False)
        pc.add_column("clip", no_wrap=True)
        for name in report["methods"]:
            pc.add_column(name, justify="right")
        for c in clips:
            row = [c["name"]]
            for m in report["methods"].values():
                sc = m["clips"][c["name"]]
                g = sc["inter"] if sc["inter"]["frames"] else sc["key"]
                row.append(f"{_fmt(g['psnr'], 2)}/{_fmt(g['ssim'], 3)}")
            pc.add_row(*row)
        tables.append(pc)
    return tables


@click.command("eval")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--synthetic", is_flag=True, help="Use the built-in fixed-seed held-out synthetic set instead of SOURCE.")
@click.option("--protocol", type=click.Choice(_PROTOCOLS), default="joint", show_default=True,
              help="joint: blurry low-rate input, score key + intermediate frames; interp: every n-th sharp frame "
                   "in, score the dropped ones; deblur: blurry input, score against the centre frames.")
@click.option("--stride", type=int, default=8, show_default=True,
              help="Keep every n-th source frame (the model runs at K = n).")
@click.option("--exposure", type=int, default=None,
              help="Source frames averaged into each blurry input (odd, <= stride) [default: largest odd < stride].")
@click.option("--blur-length", type=float, default=None, metavar="PX",
              help="With --protocol deblur: blur each input by the scene's own motion (sub-frames made with optical "
                   "flow, REDS-style) until its moving parts smear about PX pixels, within --exposure frames.")
@click.option("--methods", default=None,
              help="Comma-separated: model, repeat, blend, dis-flow, minterpolate, or 'all' [default: all].")
@run_options
@click.option("--model-mode", type=click.Choice(_MODES), default=None,
              help="Run the model in this mode instead of the protocol's.")
@click.option("--max-frames", type=int, default=None, help="Use at most this many source frames per clip.")
@click.option("--resize", default=None, metavar="WxH",
              help="Resize source frames (synthetic: render size, default 128x128).")
@click.option("--count", "count", type=int, default=16, show_default=True, help="Synthetic samples.")
@click.option("--seed", type=int, default=1234, show_default=True, help="Seed of the synthetic set.")
@click.option("--save-frames", type=click.Path(path_type=Path), default=None,
              help="Write side-by-side crops (input, each method, ground truth) as PNG here.")
@click.option("--crop", type=int, default=256, show_default=True, help="Crop size of --save-frames.")
@click.option("--per-clip", is_flag=True, help="Also print a per-clip table.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout instead of tables.")
@click.option("--adapt", "adapt", default=None, metavar="SECONDS|auto",
              help="Also score 'adapted': the model fine-tuned on each clip's own inputs first (as enhance --adapt).")
def eval_cmd(source, synthetic, protocol, stride, exposure, blur_length, methods, model_mode, max_frames, resize,
             count, seed, save_frames, crop, per_clip, as_json, adapt, **run_kwargs) -> None:
    """Score the model and classical baselines against sharp ground truth.

    SOURCE is sharp footage: a video file, a folder of frames, or a folder of videos / frame folders.
    Every method sees exactly the same inputs.

    \b
    Examples:
      vidrestore eval --synthetic
      vidrestore eval clip.mp4 --protocol joint --stride 8 --max-frames 120 --resize 640x360
      vidrestore eval clips/ --protocol interp --stride 2 --save-frames crops/
    """
    from rich.console import Console

    from vidrestore.evaluate.runner import EvalConfig, evaluate, iter_source_clips, synthetic_clips
    from vidrestore.evaluate.sources import parse_size

    if synthetic == (source is not None):
        raise UsageError("give either SOURCE or --synthetic (not both)")
    if exposure is None:
        exposure = 1 if protocol == "interp" else default_exposure(stride)
    names = parse_methods(methods, protocol)
    if adapt is not None and "adapted" not in names:
        at = names.index("model") + 1 if "model" in names else 0
        names = (*names[:at], "adapted", *names[at:])
    cfg = EvalConfig(
        protocol=protocol, stride=stride, exposure=exposure, methods=names, adapt=adapt,
        run=run_options_from(run_kwargs), model_mode=model_mode, max_frames=max_frames, resize=parse_size(resize),
        synthetic_count=count, seed=seed, save_frames=save_frames, crop=crop, blur_length=blur_length,
    )
    err = Console(stderr=True, highlight=False)
    clips = synthetic_clips(cfg) if synthetic else (c for c, _ in iter_source_clips(source, cfg))
    settings = {"source": "synthetic" if synthetic else str(source)}
    with err.status("evaluating") as status:
        report = evaluate(clips, cfg, settings, log=lambda msg: status.update(f"evaluating {msg}"))
    data = report.to_json()
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    out = Console(highlight=False)
    for table in render_table(data, per_clip):
        out.print(table)
    if report.saved:
        out.print(f"saved {len(report.saved)} comparison crop(s) to {save_frames}")
