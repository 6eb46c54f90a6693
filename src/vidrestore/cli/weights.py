"""``vidrestore weights``: list, verify, download and inspect model weights.

Heavy imports (torch, safetensors, huggingface_hub) happen inside the commands that need them.
"""

from __future__ import annotations

import click

from vidrestore.errors import UsageError, WeightsError


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def _mparams(n: int | None) -> str:
    return "-" if n is None else (f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k")


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@click.group("weights")
def weights() -> None:
    """List, verify, download or inspect model weights."""


@weights.command("list")
def list_cmd() -> None:
    """Show the registered weights and whether each is bundled, in the Hub cache, or missing."""
    from rich import box
    from rich.table import Table

    from vidrestore.weights import DEFAULT_WEIGHTS, iter_entries, load_registry, local_copy

    reg = load_registry()
    console = _console()
    if len(reg) == 0:
        console.print(f"no weights registered in {reg.path}")
        return
    wide = console.width >= 120
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("name", "left"), ("model", "left"), ("size", "right"), ("params", "right"),
                         ("status", "left"), ("sha256", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    if wide:
        table.add_column("description", overflow="fold")
    for entry in iter_entries(reg):
        found = local_copy(entry, reg)
        if found is not None:
            status = "bundled" if found.source == "bundled" else "cached"
        elif entry.sha256 is None:
            status = "not released"
        elif entry.hub is not None:
            status = "on Hub"
        else:
            status = "missing"
        name = entry.name + ("*" if entry.name == DEFAULT_WEIGHTS else "")
        row = [name, entry.config, _mb(entry.bytes), _mparams(entry.params), status,
               entry.sha256[:12] if entry.sha256 else "-"]
        table.add_row(*row, *([entry.description] if wide else []))
    console.print(table)
    console.print("* default weights; `vidrestore weights info NAME` shows details")


@weights.command("verify")
@click.argument("names", nargs=-1)
def verify_cmd(names: tuple[str, ...]) -> None:
    """Check the sha256 of the bundled or cached copy of each registered file (all, or NAMES).

    Exits non-zero if a file does not match, or if a NAME given explicitly is not on disk.
    """
    from vidrestore.weights import iter_entries, load_registry, local_copy, natural_key, sha256_file

    reg = load_registry()
    unknown = [n for n in names if n not in reg]
    if unknown:
        known = ", ".join(sorted(reg, key=natural_key)) or "none"
        raise UsageError(f"unknown weights name(s): {', '.join(unknown)} (registered: {known})")
    entries = [reg[n] for n in dict.fromkeys(names)] if names else list(iter_entries(reg))
    bad: list[str] = []
    absent: list[str] = []
    for entry in entries:
        found = local_copy(entry, reg)
        if found is None:
            why = "not released yet" if entry.sha256 is None else "not on disk"
            click.echo(f"{entry.name}: {why} (skipped)")
            absent.append(entry.name)
            continue
        if entry.sha256 is None:
            click.echo(f"{entry.name}: NO CHECKSUM in the registry for {found.path}")
            bad.append(entry.name)
            continue
        actual = sha256_file(found.path)
        if actual == entry.sha256:
            click.echo(f"{entry.name}: ok ({found.source}, sha256 {actual[:12]})")
        else:
            click.echo(f"{entry.name}: MISMATCH ({found.path}: sha256 {actual[:12]}, expected {entry.sha256[:12]})")
            bad.append(entry.name)
    if bad:
        raise WeightsError(f"checksum verification failed for: {', '.join(bad)}")
    if names and absent:
        raise WeightsError(f"not on disk, so not verified: {', '.join(absent)} (try `vidrestore weights download`)")


@weights.command("download")
@click.argument("spec")
def download_cmd(spec: str) -> None:
    """Download registered weights (NAME, or hf://owner/repo/file[@rev]) into the Hugging Face cache and verify them.

    Honours HF_HUB_OFFLINE and HF_HUB_CACHE / HF_HOME.
    """
    from vidrestore.weights import (
        HF_PREFIX,
        Located,
        download,
        load_registry,
        locate_weights,
        natural_key,
        verify_located,
    )

    reg = load_registry()
    if spec.startswith(HF_PREFIX):
        located = locate_weights(spec, registry=reg)
    else:
        entry = reg.get(spec)
        if entry is None:
            known = ", ".join(sorted(reg, key=natural_key)) or "none"
            raise UsageError(f"unknown weights name {spec!r} (registered: {known})")
        bundled = reg.bundled_path(entry)
        if bundled.is_file():
            verify_located(Located(bundled, entry, "bundled"))
            click.echo(f"{spec}: bundled with vidrestore ({bundled}, sha256 ok); nothing to download")
            return
        if entry.hub is None:
            raise WeightsError(f"weights {spec!r} have no Hugging Face location in the registry; nothing to download")
        located = Located(download(entry.hub), entry, "hub")
    verify_located(located)
    click.echo(f"{spec}: {located.path}" + (" (sha256 ok)" if located.entry is not None else ""))


@weights.command("info")
@click.argument("spec")
@click.option("--sha256", "expected", metavar="HEX", help="Also check the file against this sha256.")
def info_cmd(spec: str, expected: str | None) -> None:
    """Show a weights file's metadata, model size and checksum (SPEC: path, registered name or hf://)."""
    import json

    from vidrestore.weights import META_CONFIG, locate_weights, model_from_file, read_metadata, sha256_file, verify_file

    located = locate_weights(spec)
    if expected is not None:
        verify_file(located.path, expected)
    meta = read_metadata(located.path)
    model = model_from_file(located.path)  # proves the file loads into its model
    params = sum(int(t.numel()) for t in model.state_dict().values())
    sha = sha256_file(located.path)
    click.echo(f"file:      {located.path}")
    click.echo(f"source:    {located.source}" + (f" (registered as {located.entry.name})" if located.entry else ""))
    click.echo(f"size:      {_mb(located.path.stat().st_size)}")
    click.echo(f"model:     {model.config.name} ({_mparams(params)} values)")
    if located.entry is not None and located.entry.description:
        click.echo(f"about:     {located.entry.description}")
    registered = located.entry.sha256 if located.entry else None
    note = ""
    if registered is not None:
        note = " (matches the registry)" if registered == sha else " (DOES NOT MATCH the registry)"
    elif expected is not None:
        note = " (matches --sha256)"
    click.echo(f"sha256:    {sha}{note}")
    for key in sorted(meta):
        value = meta[key]
        if key == META_CONFIG:
            try:
                value = json.dumps(json.loads(value), sort_keys=True)
            except ValueError:
                pass
        click.echo(f"{key}: {value}")
    if registered is not None and registered != sha:
        raise WeightsError(f"{located.path} does not match the registry's sha256 for {located.entry.name!r}")
