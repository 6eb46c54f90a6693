"""``vidrestore train``: one run (``vidrestore.train.loop.train``) or a recipe of runs
(``vidrestore.train.recipe``). torch is imported only when the command runs."""

from __future__ import annotations

import os
from pathlib import Path

import click

from vidrestore.config import PIXEL_LOSSES
from vidrestore.errors import UsageError

# the options a --recipe run takes from the command line (everything else is in the recipe)
RECIPE_OPTIONS = ("recipe", "out", "stage", "data", "set_options", "dry_run", "minutes", "device", "precision",
                  "threads")


@click.command("train")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False), help="Run folder: checkpoints, log.jsonl, final.safetensors (with --recipe: one folder per stage; default runs/RECIPE-NAME).")
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False), default=None, help="Run a recipe (TOML): a chain of training stages into OUT/STAGE/, resumable, and the final weights OUT/final.safetensors. See recipes/ in the repository.")
@click.option("--stage", "stage", default=None, metavar="NAME", help="With --recipe: run only this stage.")
@click.option("--data", "data", type=click.Path(file_okay=False), default=None, envvar="VIDRESTORE_DATA", help="With --recipe: the folder ${DATA} stands for in the recipe [default: ../shared/data beside the repository; env VIDRESTORE_DATA].")
@click.option("--set", "set_options", multiple=True, metavar="NAME=VALUE", help="With --recipe: set a train option in every training stage, e.g. --set max_steps=2 (VALUE in TOML syntax; repeatable).")
@click.option("--dry-run", is_flag=True, help="With --recipe: check the recipe and print its stages, train nothing.")
@click.option("--size", type=click.Choice(["tiny", "small", "default"]), default="small", show_default=True, help="Model size.")
@click.option("--steps", type=int, default=20000, show_default=True, help="Total optimizer steps of the run (over all resumed chunks).")
@click.option("--max-steps", type=int, default=None, help="Stop the run at this step, the schedule still spanning --steps.")
@click.option("--minutes", type=float, default=None, help="Time budget of this invocation; checkpoints and exports when spent.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=96, show_default=True, help="Training crop size in pixels.")
@click.option("--lr", type=float, default=4e-4, show_default=True, help="Peak learning rate (warmup, then cosine).")
@click.option("--warmup", type=int, default=300, show_default=True, help="Warmup steps.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out (starts fresh if there is none).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", default="auto", show_default=True, help="auto, fp32, bf16 or fp16 (autocast).")
@click.option("--textures", "textures", multiple=True, type=click.Path(exists=True), help="Images/videos (files or folders) for synthetic textures; repeatable. Default: procedural only.")
@click.option("--clips", type=click.Path(exists=True), default=None, help="Sharp ordinary-rate videos: interpolation samples.")
@click.option("--videos", type=click.Path(exists=True), default=None, help="High-frame-rate videos: Adobe240-style joint samples.")
@click.option("--mix", "mix", default=None, help="Data mix weights, e.g. synthetic=0.7,clips=0.3 (default: synthetic 1, clips 0.25, videos 0.5 when given).")
@click.option("--subframes", type=int, default=8, show_default=True, help="Synthetic sub-frames per input interval (>= 8, multiple of 8).")
@click.option("--max-speed", type=float, default=24.0, show_default=True, help="Largest synthetic motion, px per input interval.")
@click.option("--exposure", type=(float, float), default=(0.0, 1.0), show_default=True, metavar="MIN MAX", help="Synthetic exposure range, as a fraction of the frame interval (blur length = speed x exposure).")
@click.option("--sharp-prob", type=float, default=0.15, show_default=True, help="Share of synthetic samples with sharp inputs.")
@click.option("--noise", type=float, default=0.01, show_default=True, help="Largest std of the noise added to synthetic inputs (0: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-every", type=int, default=500, show_default=True)
@click.option("--val-count", type=int, default=16, show_default=True)
@click.option("--log-every", type=int, default=25, show_default=True)
@click.option("--ckpt-every", type=int, default=250, show_default=True)
@click.option("--init", "init", default=None, help="Start a fresh run from these weights (registry name or path): fine-tuning.")
@click.option("--key-weight", type=float, default=1.0, show_default=True, help="Loss weight of the key (deblurred) frame; in-between frames weigh 1.")
@click.option("--pixel-loss", type=click.Choice(PIXEL_LOSSES), default=PIXEL_LOSSES[0], show_default=True, help="Image loss: Charbonnier plus a Laplacian-pyramid term, or the per-frame PSNR itself (weighs nearly-sharp frames as a mean of PSNRs does).")
@click.option("--inter-weight", type=float, default=1.0, show_default=True, help="Loss weight of the in-between frames (0 with --flow-weight 0: they are not even computed, e.g. with --train-only key_branch).")
@click.option("--train-only", "train_only", multiple=True, metavar="PART", help="Train only this part of the network (a top-level module, e.g. key_branch); the rest stays frozen. Repeatable.")
@click.option("--clip-key-weight", type=float, default=None, help="Key-frame loss weight in --clips batches (their key input is its own target) [default: --key-weight]")
@click.option("--flow-weight", type=float, default=0.0, show_default=True, help="Loss weight of the flow term on synthetic batches: every flow stage's error against the scene's exact flows, in pixels (0: off).")
@click.option("--clip-flow-weight", type=float, default=0.0, show_default=True, help="Loss weight of the flow term on --clips batches, against classical DIS flows from the true in-between frame to both inputs (checked photometrically; 0: off).")
@click.option("--clip-scale", type=float, default=0.25, show_default=True, help="Scale at which --clips footage is decoded.")
@click.option("--holdout-frames", type=int, default=0, show_default=True, help="Never train on the first N frames of any video (clips, videos, texture videos): keeps an evaluation segment unseen.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch in this process (default: torch's choice).")
@click.option("--export", "export", type=click.Path(dir_okay=False), default=None, help="Where to export the weights (default: OUT/final.safetensors).")
@click.pass_context
def train(ctx: click.Context, recipe, stage, data, set_options, dry_run, threads, **options) -> None:
    """Train a model on synthetic scenes and/or your footage.

    Synthetic scenes (textured layers with exact continuous motion, blur by averaging sub-frames) are
    always available; --clips adds interpolation samples from sharp ordinary footage, --videos adds
    Adobe240-style samples from your own high-frame-rate footage. Stop and resume at will: --minutes
    bounds one invocation, --resume continues it. A recipe (--recipe FILE) runs a whole chain of such
    runs, written down as data.
    """
    source = click.core.ParameterSource
    given = {name for name in ctx.params if ctx.get_parameter_source(name) in (source.COMMANDLINE, source.PROMPT)}
    if threads is not None and threads < 1:
        raise UsageError("--threads must be >= 1")
    if recipe is not None:
        extra = sorted(given - set(RECIPE_OPTIONS))
        if extra:
            raise UsageError(f"--{extra[0].replace('_', '-')} with --recipe: set it in the recipe (or with --set)")
    else:
        for name in ("stage", "data", "set_options", "dry_run"):
            if name in given:
                raise UsageError(f"--{'set' if name == 'set_options' else name.replace('_', '-')} needs --recipe FILE")
        if options["out"] is None:
            raise UsageError("--out DIR is required (or --recipe FILE)")
    # on a shared machine, spinning OpenMP workers take the other cores and slow every step several times
    # over when another process is busy: wait passively (read when torch starts its thread pool)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if recipe is not None:
        _run_recipe(recipe, {**options, "threads": threads}, stage, data, set_options, dry_run, given)
        return
    from vidrestore.train.config import train_config
    from vidrestore.train.loop import train as run_training

    cfg = train_config({k: v for k, v in options.items() if k in given or k == "out"})
    result = run_training(cfg, echo=lambda line: click.echo(line))
    state = "finished" if result.finished else "paused (run again with --resume to continue)"
    click.echo(f"{state}: step {result.step}, weights {result.export_path}")


def _is_prior_recipe(path: str) -> bool:
    import tomllib

    try:
        return tomllib.loads(Path(path).read_text()).get("arch") == "prior"
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False  # the recipe loader says what is wrong


def _run_prior_recipe(path: str, options: dict, data: str | None, set_options: tuple[str, ...], dry_run: bool,
                      given: set[str]) -> None:
    """A flow-prior network recipe (``arch = "prior"``): one resumable run into OUT."""
    from vidrestore.train.prior_loop import load_prior_recipe, parse_overrides, train_prior

    overrides = dict(parse_overrides(set_options))
    for name in ("out", "minutes", "threads", "device", "precision"):
        if name in given and options.get(name) is not None:
            overrides[name] = options[name]
    cfg = load_prior_recipe(path, overrides, data)
    if dry_run:
        click.echo(f"{cfg.name}: flow-prior network, size {cfg.size}, {cfg.steps} steps of {cfg.batch} x {cfg.crop}px "
                   f"on {cfg.device} ({cfg.precision}), {len(cfg.footage)} footage paths -> {cfg.out}")
        return
    result = train_prior(cfg, echo=lambda line: click.echo(line))
    state = "finished" if result["finished"] else "paused (run the same command again to continue)"
    click.echo(f"{state}: step {result['step']}, weights {result['export']}")


def _run_recipe(path: str, options: dict, stage: str | None, data: str | None, set_options: tuple[str, ...],
                dry_run: bool, given: set[str]) -> None:
    from vidrestore.train.recipe import Runner, load_recipe, parse_overrides, plan_lines

    if _is_prior_recipe(path):
        if stage is not None:
            raise UsageError("--stage does not apply to a flow-prior recipe (it has one stage)")
        _run_prior_recipe(path, options, data, set_options, dry_run, given)
        return

    recipe = load_recipe(path, data=data, overrides=parse_overrides(set_options))
    out = options["out"] or str(Path("runs") / recipe.name)
    runner = Runner(recipe, out, minutes=options["minutes"],
                    device=options["device"] if "device" in given else None,
                    precision=options["precision"] if "precision" in given else None,
                    echo=lambda line: click.echo(line))
    if dry_run:
        for line in plan_lines(runner):
            click.echo(line)
        return
    result = runner.run(only=stage)
    if result.finished:
        click.echo(f"finished: recipe {recipe.name}, weights {result.export}")
    elif not stage:
        click.echo(f"paused: run `vidrestore train --recipe {path} --out {out}` again to continue")
