"""Model weights: the registry, locating files (path, bundled copy, Hugging Face Hub), checksums,
and safetensors save/load with the model's config in the metadata.

A weights *spec* is one of:

* a path to a ``.safetensors`` file;
* a registered name (``vidrestore-prior-small-v1``): the bundled copy beside this file, else the Hub
  cache, else a download from the Hub (unless offline);
* ``hf://owner/repo/path/file.safetensors[@revision]``: straight from the Hub (or its cache).

Registered files are always checked against the registry's sha256 before use. Only safetensors
is read (never pickle). torch, safetensors and huggingface_hub are imported only when needed.

The one network is the flow-prior network (:class:`~vidrestore.model.prior_net.PriorNet`): its files
say ``"arch": "prior"`` in their config. Files of the network before it (no ``"arch"``, retired in 0.2.0)
are refused with a message naming the weights to use instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from vidrestore._version import __version__
from vidrestore.errors import WeightsError
from vidrestore.names import natural_key
from vidrestore.weights._files import (
    DTYPE_BYTES,
    _is_file,
    FORMAT_VERSION,
    META_CONFIG,
    META_FORMAT,
    META_VERSION,
    RESERVED_KEYS,
    copy_atomic,
    metadata_of,
    read_header,
    read_metadata,
    read_tensors,
    sha256_file,
    tensors_to_bytes,
    verify_file,
    write_atomic,
)
from vidrestore.weights._hub import HF_PREFIX, cached_path, download, env_offline, parse_hf_spec
from vidrestore.weights._registry import (
    HubLocation,
    Registry,
    WeightsEntry,
    check_name,
    parse_registry,
    write_registry,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vidrestore.model.prior_net import PriorConfig, PriorNet

__all__ = [
    "DEFAULT_WEIGHTS",
    "FORMAT_VERSION",
    "META_CONFIG",
    "META_FORMAT",
    "META_VERSION",
    "REGISTRY",
    "REGISTRY_PATH",
    "WEIGHTS_DIR",
    "HubLocation",
    "Located",
    "Registry",
    "WeightsEntry",
    "WeightsError",
    "download",
    "env_offline",
    "iter_entries",
    "load_model",
    "load_registry",
    "local_copy",
    "locate_weights",
    "model_from_file",
    "parse_hf_spec",
    "read_metadata",
    "register_weights",
    "resolve_weights",
    "save_weights",
    "sha256_file",
    "verify_file",
    "verify_located",
]

WEIGHTS_DIR = Path(__file__).resolve().parent
REGISTRY_PATH = WEIGHTS_DIR / "registry.json"
# The weights `enhance`, `eval` and `bench` use when --weights is not given (the one bundled file).
DEFAULT_WEIGHTS = "vidrestore-prior-small-v1"

_cache: dict[str, tuple[tuple[int, int], Registry]] = {}


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """The registry at ``path`` (default: ``REGISTRY_PATH``, read at call time), re-read when the file
    changes. A ``Registry`` is a read-only mapping name -> WeightsEntry."""
    path = Path(path if path is not None else REGISTRY_PATH)
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (-1, -1)
    key = str(path)
    hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    reg = parse_registry(path)
    _cache[key] = (stamp, reg)
    return reg


def __getattr__(name: str) -> Any:  # PEP 562: REGISTRY is read lazily, on first use
    if name == "REGISTRY":
        return load_registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _registry(registry: Registry | str | os.PathLike[str] | None) -> Registry:
    return registry if isinstance(registry, Registry) else load_registry(registry)


@dataclass(frozen=True)
class Located:
    """Where a spec resolved to. ``entry`` is the registry entry the file must match (None for a
    plain path or an unregistered hf:// file); ``source`` is "file", "bundled", "cache" or "hub"."""

    path: Path
    entry: WeightsEntry | None
    source: str


def local_copy(entry: WeightsEntry, registry: Registry | str | os.PathLike[str] | None = None) -> Located | None:
    """The bundled copy of a registered file, else its Hub-cache copy; None if neither is on disk.
    Never touches the network."""
    reg = _registry(registry)
    bundled = reg.bundled_path(entry)
    if bundled.is_file():
        return Located(bundled, entry, "bundled")
    if entry.hub is not None:
        found = cached_path(entry.hub)
        if found is not None:
            return Located(found, entry, "cache")
    return None


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.startswith(("~", ".")) or Path(spec).suffix != ""


def locate_weights(
    spec: str, *, offline: bool | None = None, registry: Registry | str | os.PathLike[str] | None = None
) -> Located:
    """Resolve a weights spec: an existing path; a registered name (bundled, Hub cache, Hub);
    an ``hf://`` spec. ``offline`` (default: ``HF_HUB_OFFLINE``) forbids network access."""
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise WeightsError("no weights given (expected a file, a registered name or hf://owner/repo/file)")
    spec = os.fspath(spec).strip()
    reg = _registry(registry)
    if spec.startswith(HF_PREFIX):
        loc = parse_hf_spec(spec)
        entry = next((e for e in reg.values() if e.hub == loc), None)
        return Located(download(loc, offline=offline), entry, "hub")
    path = Path(spec).expanduser()
    if _is_file(path):  # an unreadable folder on the way: a WeightsError about the file
        return Located(path, None, "file")
    if path.is_dir():
        raise WeightsError(f"weights path is a directory, not a .safetensors file: {spec}")
    if _exists(path):
        raise WeightsError(f"weights path is not a regular file (a pipe or a device?): {spec}")
    entry = reg.get(spec)
    if entry is None:
        if _looks_like_path(spec):
            raise WeightsError(f"weights file not found: {spec}")
        known = ", ".join(sorted(reg, key=natural_key)) or "none"
        raise WeightsError(f"unknown weights {spec!r}: not a file and not a registered name (registered: {known})")
    found = local_copy(entry, reg)
    if found is not None:
        return found
    if entry.hub is None and entry.sha256 is None:
        raise WeightsError(
            f"weights {spec!r} are planned but not available yet (no trained file is bundled or registered); "
            "pass --weights PATH to a .safetensors file"
        )
    if entry.hub is None:
        raise WeightsError(
            f"weights {spec!r} are registered but not installed: {entry.file} is not bundled and has no "
            "Hugging Face location (reinstall vidrestore, or pass --weights PATH)"
        )
    return Located(download(entry.hub, offline=offline), entry, "hub")


def resolve_weights(
    spec: str, *, offline: bool | None = None, registry: Registry | str | os.PathLike[str] | None = None
) -> Path:
    """The local path of a weights spec (see ``locate_weights``), downloading into the Hub cache if needed."""
    return locate_weights(spec, offline=offline, registry=registry).path


def verify_located(located: Located) -> None:
    """Check a located file against its registry entry's sha256 (no-op for unregistered files)."""
    entry = located.entry
    if entry is None:
        return
    if entry.sha256 is None:
        raise WeightsError(
            f"weights {entry.name!r} have no sha256 in the registry, so {located.path} cannot be checked "
            "(add the file's sha256, from `vidrestore weights info FILE`, to that entry of the registry, or load "
            "the file by its path)"
        )
    verify_file(located.path, entry.sha256, label=f"weights {entry.name!r}")


def _config_from_metadata(meta: Mapping[str, str], path: Path) -> "PriorConfig":
    """The flow-prior network config a file's metadata describes (its ``"arch"``)."""
    from vidrestore.model.prior_net import ARCH, prior_config_from_dict

    fmt = meta.get(META_FORMAT)
    if fmt is not None and fmt != FORMAT_VERSION:
        raise WeightsError(f"unsupported weights format {fmt!r} (this vidrestore reads {FORMAT_VERSION!r}): {path}")
    raw = meta.get(META_CONFIG)
    if raw is None:
        raise WeightsError(f"not vidrestore weights (no {META_CONFIG!r} in the safetensors metadata): {path}")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise WeightsError(f"invalid {META_CONFIG!r} metadata in {path}: nested too deeply") from None
    except ValueError as err:
        raise WeightsError(f"invalid {META_CONFIG!r} metadata in {path}: {_first_line(err)}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"invalid {META_CONFIG!r} metadata in {path}: expected a JSON object")
    if "arch" not in data:
        raise WeightsError(f"{path} holds the old vidrestore network (VidRestoreNet), retired in 0.2.0: this "
                           f"vidrestore runs only the flow-prior network; use the default weights "
                           f"({DEFAULT_WEIGHTS}) or other flow-prior weights")
    if data["arch"] != ARCH:
        raise WeightsError(f"invalid {META_CONFIG!r} metadata in {path}: unknown architecture {str(data['arch'])[:40]!r}")
    try:
        return prior_config_from_dict(data)
    except Exception as err:
        raise WeightsError(f"invalid {META_CONFIG!r} metadata in {path}: {_first_line(err)}") from None


def _first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an error's text, cut to ``limit`` characters (it may quote a file's metadata)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _describe_mismatch(model_sd: Mapping[str, "torch.Tensor"], file_sd: Mapping[str, "torch.Tensor"]) -> str | None:
    def few(keys: list[str]) -> str:
        keys = sorted(keys)
        return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")

    missing = [k for k in model_sd if k not in file_sd]
    unexpected = [k for k in file_sd if k not in model_sd]
    shapes = [k for k in model_sd if k in file_sd and tuple(model_sd[k].shape) != tuple(file_sd[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({few(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({few(unexpected)})")
    if shapes:
        k = sorted(shapes)[0]
        parts.append(
            f"{len(shapes)} with the wrong shape (e.g. {k}: file {list(file_sd[k].shape)}, "
            f"model {list(model_sd[k].shape)})"
        )
    return "; ".join(parts) or None


# Bounds of a weights file's model config, checked before anything is built: the flow-prior network's size
# fields, (least, most) of each whole number, ten times and more the largest model made (see
# vidrestore.model.prior_net.PRIOR_CONFIGS), far below what would exhaust memory; and the most entries of a tuple
CONFIG_BOUNDS: dict[str, tuple[int, int]] = {"channels": (1, 1024), "window": (1, 31), "head": (1, 1024),
                                             "widths": (1, 1024), "blocks": (0, 64), "refine": (1, 1024)}
CONFIG_LEVELS = 6


def check_config_bounds(cfg: "PriorConfig", path: Path) -> None:
    """Every size field of a file's model config is a whole number within ``CONFIG_BOUNDS``."""
    for name, (low, high) in CONFIG_BOUNDS.items():
        value = getattr(cfg, name)
        values = value if isinstance(value, tuple) else (value,)
        if len(values) > CONFIG_LEVELS or not all(
                isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values):
            raise WeightsError(f"invalid {META_CONFIG!r} metadata in {path}: {name} {str(value)[:40]} is out of "
                               f"range (at most {CONFIG_LEVELS} whole numbers from {low} to {high})")


def _check_against_header(expected: Mapping[str, "torch.Tensor"], header: Mapping[str, Any],
                          cfg: "PriorConfig", path: Path) -> None:
    """The tensors the config declares (built on the meta device) against the file's header: names,
    shapes and total bytes, before any tensor is allocated."""
    from types import SimpleNamespace

    declared = {k: SimpleNamespace(shape=tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"}
    problem = _describe_mismatch(expected, declared)
    if problem:
        raise WeightsError(f"weights in {path} do not fit the {cfg.name!r} model: {problem}")
    want = sum(int(t.numel()) * DTYPE_BYTES[header[k]["dtype"]] for k, t in expected.items())
    have = sum(header[k]["data_offsets"][1] - header[k]["data_offsets"][0] for k in declared)
    if want != have:  # pragma: no cover - names and shapes already agree, and _check_header checked each size
        raise WeightsError(f"weights in {path} do not fit the {cfg.name!r} model: {have} bytes of tensors, "
                           f"expected {want}")


def model_from_file(path: str | os.PathLike[str]) -> "PriorNet":
    """Build the flow-prior network described by a weights file's metadata and load its tensors (strict), on
    the CPU."""
    import torch

    from vidrestore.model.prior_net import PriorNet

    path = Path(path)
    header = read_header(path)
    meta = metadata_of(header, path)
    cfg = _config_from_metadata(meta, path)
    check_config_bounds(cfg, path)
    try:
        with torch.device("meta"):  # names and shapes only: no memory, whatever the config says
            expected = PriorNet(cfg).state_dict()
    except Exception as err:
        raise WeightsError(f"cannot build the model described in {path}: {_first_line(err)}") from None
    _check_against_header(expected, header, cfg, path)  # before any tensor is read or allocated
    tensors, _ = read_tensors(path)
    try:
        model = PriorNet(cfg)
    except Exception as err:
        raise WeightsError(f"cannot build the model described in {path}: {_first_line(err)}") from None
    problem = _describe_mismatch(model.state_dict(), tensors)
    if problem:
        raise WeightsError(f"weights in {path} do not fit the {cfg.name!r} model: {problem}")
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise WeightsError(f"corrupt weights file (tensor {key!r} has NaN or infinite values): {path}")
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"weights in {path} do not fit the {cfg.name!r} model: {str(err).splitlines()[0]}") from None
    return model


def load_model(
    spec: str,
    device: "torch.device | str" = "cpu",
    dtype: "torch.dtype | None" = None,
    *,
    offline: bool | None = None,
    expected_sha256: str | None = None,
    registry: Registry | str | os.PathLike[str] | None = None,
) -> "PriorNet":
    """Locate, verify and load weights into a model in eval mode on ``device`` (cast to ``dtype`` if given).

    Registered files (bundled, cached or downloaded) are checked against the registry's sha256;
    ``expected_sha256`` adds a check for any file, plain paths included.
    """
    located = locate_weights(spec, offline=offline, registry=registry)
    verify_located(located)
    if expected_sha256 is not None:
        verify_file(located.path, expected_sha256)
    model = model_from_file(located.path)
    if dtype is not None:
        model = model.to(device=device, dtype=dtype)
    else:
        model = model.to(device=device)
    return model.eval()


def save_weights(
    model: "PriorNet", path: str | os.PathLike[str], extra_metadata: Mapping[str, str] | None = None
) -> str:
    """Write a model's state dict as safetensors (atomically) with its config and version in the
    metadata; returns the file's sha256."""
    from vidrestore.model.prior_net import PriorConfig, prior_config_to_json

    extra = dict(extra_metadata or {})
    bad = sorted(k for k in extra if k in RESERVED_KEYS)
    if bad:
        raise ValueError(f"extra_metadata may not set reserved keys: {', '.join(bad)}")
    for k, v in extra.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"extra_metadata must map str to str (got {k!r}: {type(v).__name__})")
    config = getattr(model, "config", None)
    if not isinstance(config, PriorConfig):
        raise TypeError("save_weights needs a PriorNet (a model with a PriorConfig .config)")
    meta = {**extra, META_CONFIG: prior_config_to_json(config)}
    meta.update({META_VERSION: __version__, META_FORMAT: FORMAT_VERSION})
    # clone: tied or views of one storage must be stored as separate tensors in safetensors
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    data = tensors_to_bytes(tensors, meta)
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def register_weights(
    name: str,
    path: str | os.PathLike[str],
    description: str = "",
    *,
    hub: HubLocation | None = None,
    registry_path: str | os.PathLike[str],
) -> WeightsEntry:
    """Place a trained weights file beside the registry at ``registry_path`` (a maintainer's source tree,
    never an installed package) as ``NAME.safetensors`` and record it (sha256, model size, parameter
    count, description, optional Hub location) there.

    The file must load into its model (strict). An existing entry of that name is replaced, keeping
    its description and Hub location unless new ones are given.
    """
    check_name(name)
    src = Path(path).expanduser()
    if not src.is_file():
        raise WeightsError(f"weights file not found: {path}")
    model = model_from_file(src)  # validates format, metadata and state dict
    params = sum(int(t.numel()) for t in model.state_dict().values())
    reg = load_registry(registry_path)
    dest = reg.folder / f"{name}.safetensors"
    if not (dest.exists() and dest.resolve() == src.resolve()):
        try:
            copy_atomic(src, dest)
        except OSError as err:
            raise WeightsError(f"cannot copy {src} to {dest}: {err.strerror or err}") from None
    old = reg.get(name)
    entry = WeightsEntry(
        name=name,
        file=dest.name,
        sha256=sha256_file(dest),
        config=model.config.name,
        description=description or (old.description if old else ""),
        hub=hub if hub is not None else (old.hub if old else None),
        bytes=dest.stat().st_size,
        params=params,
    )
    entries = dict(reg.entries)
    entries[name] = entry
    write_registry(reg.path, entries)
    _cache.pop(str(reg.path), None)
    return entry


def iter_entries(registry: Registry | str | os.PathLike[str] | None = None) -> Iterator[WeightsEntry]:
    """The registry's entries, in natural name order."""
    reg = _registry(registry)
    for name in sorted(reg, key=natural_key):
        yield reg[name]
