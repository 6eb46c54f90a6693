"""``vidrestore weights``: list, verify, download and inspect model weights.

Heavy imports (torch, safetensors, huggingface_hub) happen inside the commands that need them.
"""

from __future__ import annotations

import click

from vidrestore.errors import UsageError, WeightsError


def _known(names: tuple[str, ...]) -> list[str]:
    from vidrestore.weights import MODELS

    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise UsageError(f"unknown weights name(s): {', '.join(unknown)} (known: {', '.join(sorted(MODELS))})")
    return list(dict.fromkeys(names)) if names else sorted(MODELS)


@click.group("weights")
def weights() -> None:
    """List, verify, download or inspect model weights."""


@weights.command("list")
def list_cmd() -> None:
    """Show the known weights, where each lives, and whether it is on this machine."""
    from vidrestore.weights import DEFAULT_WEIGHTS, MODELS, local_path

    for name in sorted(MODELS):
        known = MODELS[name]
        state = "on disk" if local_path(name) is not None else "not downloaded"
        mark = " (default)" if name == DEFAULT_WEIGHTS else ""
        click.echo(f"{name}{mark}: {known.location}, {state}, sha256 {known.sha256[:12]}")


@weights.command("verify")
@click.argument("names", nargs=-1)
def verify_cmd(names: tuple[str, ...]) -> None:
    """Check the sha256 of each known file on disk (all, or NAMES).

    Exits non-zero if a file does not match, or if a NAME given explicitly is not on disk.
    """
    from vidrestore.weights import MODELS, local_path, sha256_file

    bad, absent = [], []
    for name in _known(names):
        path = local_path(name)
        if path is None:
            click.echo(f"{name}: not on disk (skipped)")
            absent.append(name)
        elif sha256_file(path) == MODELS[name].sha256:
            click.echo(f"{name}: ok ({path})")
        else:
            click.echo(f"{name}: MISMATCH ({path} is not the file named)")
            bad.append(name)
    if bad:
        raise WeightsError(f"checksum verification failed for: {', '.join(bad)}")
    if names and absent:
        raise WeightsError(f"not on disk, so not verified: {', '.join(absent)} (try `vidrestore weights download`)")


@weights.command("download")
@click.argument("spec")
def download_cmd(spec: str) -> None:
    """Fetch weights (NAME, or hf://owner/repo/file[@rev]) into the Hugging Face cache, and verify a named file.

    Honours HF_HUB_OFFLINE and HF_HUB_CACHE / HF_HOME.
    """
    from vidrestore.weights import hub, locate, verify_file

    if not spec.startswith(hub.PREFIX):
        _known((spec,))
    path, sha = locate(spec)
    if sha is not None:
        verify_file(path, sha, label=f"weights {spec!r}")
    click.echo(f"{spec}: {path}" + (" (sha256 ok)" if sha is not None else ""))


@weights.command("info")
@click.argument("spec")
@click.option("--sha256", "expected", metavar="HEX", help="Also check the file against this sha256.")
def info_cmd(spec: str, expected: str | None) -> None:
    """Show a weights file's metadata, model size and checksum (SPEC: path, known name or hf://)."""
    import json

    from vidrestore.weights import META_CONFIG, locate, model_from_file, read_metadata, sha256_file, verify_file

    path, sha = locate(spec)
    if expected is not None:
        verify_file(path, expected)
    meta = read_metadata(path)
    model = model_from_file(path)  # proves the file loads into its model
    params = sum(int(t.numel()) for t in model.state_dict().values())
    actual = verify_file(path, sha, label=f"weights {spec!r}") if sha is not None else sha256_file(path)
    click.echo(f"file:      {path}")
    click.echo(f"size:      {path.stat().st_size / 1e6:.1f} MB")
    click.echo(f"model:     {model.config.name} ({params / 1e6:.2f} M values)")
    click.echo(f"sha256:    {actual}" + (f" (matches {spec})" if sha is not None else ""))
    for key in sorted(meta):
        value = meta[key]
        if key == META_CONFIG:
            try:
                value = json.dumps(json.loads(value), sort_keys=True)
            except ValueError:
                pass
        click.echo(f"{key}: {value}")
