"""``vidrestore train``: a flow-prior network recipe (``arch = "prior"``, see ``recipes/prior-small.toml``) ->
one resumable run (:mod:`vidrestore.train.prior_loop`). torch is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path

import click

from vidrestore.errors import UsageError


@click.command("train")
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The recipe (TOML) of a flow-prior network run (arch = \"prior\"; see recipes/ in the repository).")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Run folder: ckpt/, log.jsonl, final.safetensors "
                   "[default: the recipe's out, else runs/RECIPE-NAME].")
@click.option("--minutes", type=float, default=None,
              help="Time budget of this invocation; checkpoints and exports when spent.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch [default: the recipe's].")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: the recipe's].")
@click.option("--precision", default=None, help="fp32, bf16 or fp16 (autocast) [default: the recipe's].")
@click.option("--set", "set_options", multiple=True, metavar="NAME=VALUE",
              help="Set a recipe field, e.g. --set steps=2 (VALUE in TOML syntax; repeatable).")
@click.option("--data", "data", type=click.Path(file_okay=False), default=None, envvar="VIDRESTORE_DATA",
              help="The folder {data} stands for in the recipe [default: ../shared/data beside the repository; "
                   "env VIDRESTORE_DATA].")
@click.option("--dry-run", is_flag=True, help="Check the recipe and print the run, train nothing.")
@click.option("--fill-cache", is_flag=True,
              help="Make the run's training windows instead of training: fill its cache, then (with --minutes) keep "
                   "replacing the oldest windows with fresh ones. Runs at a low priority beside a training process.")
def train(recipe, out, minutes, threads, device, precision, set_options, data, dry_run, fill_cache) -> None:
    """Train the flow-prior network from a recipe, in resumable chunks.

    Real footage, held-out segments, synthetic scenes, the schedule and the model size are in the recipe;
    run the same command again to continue a run (--minutes bounds one invocation).
    """
    if threads is not None and threads < 1:
        raise UsageError("--threads must be >= 1")
    if _arch(recipe) not in ("prior", None):
        raise UsageError(f"--recipe {recipe}: not a flow-prior network recipe (it needs arch = \"prior\"; the old "
                         "network's recipes were retired in 0.2.0)")
    from vidrestore.train.prior_loop import fill_cache as fill, load_prior_recipe, parse_overrides, train_prior

    overrides = dict(parse_overrides(set_options))
    given = {"out": out, "minutes": minutes, "threads": threads, "device": device, "precision": precision}
    overrides.update({name: value for name, value in given.items() if value is not None})
    cfg = load_prior_recipe(recipe, overrides, data)
    if dry_run:
        stages = ", ".join(f"{st.name} {st.batch} x {st.crop}px" + (f" to {st.until}" if st.until else "")
                           for st in cfg.stages)
        click.echo(f"{cfg.name}: flow-prior network, size {cfg.size}, {cfg.steps} steps ({stages}) "
                   f"on {cfg.device} ({cfg.precision}), {len(cfg.footage)} footage paths -> {cfg.out}")
        return
    if fill_cache:
        made = fill(cfg, minutes, echo=lambda line: click.echo(line))
        click.echo(f"cache {cfg.cache_folder}: {made} shards made")
        return
    result = train_prior(cfg, echo=lambda line: click.echo(line))
    state = "finished" if result["finished"] else "paused (run the same command again to continue)"
    click.echo(f"{state}: step {result['step']}, weights {result['export']}")


def _arch(path: str) -> str | None:
    """The recipe's ``arch`` ("" where it has none), None if it cannot be read (the recipe loader says why)."""
    import tomllib

    try:
        return str(tomllib.loads(Path(path).read_text()).get("arch", ""))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
