"""Model weights: one table of known weights, ``load_model`` for any spec, safetensors save and load.

A weights spec is a path to a ``.safetensors`` file; a name from ``MODELS``, whose file is bundled beside this
module or lives at an ``hf://`` location; or ``hf://owner/repo/path/file.safetensors[@revision]``, from the
Hugging Face cache, else downloaded unless offline. Named files are checked against the table's sha256 before
use. Only safetensors is read (never pickle), with the library's own parser, its errors turned into one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from vidrestore import interrupts
from vidrestore._version import __version__
from vidrestore.errors import WeightsError
from vidrestore.weights import hub

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vidrestore.model.prior_net import PriorConfig, PriorNet


@dataclass(frozen=True)
class Known:
    """A named set of weights: a file beside this module or an ``hf://`` location, and its sha256."""

    location: str
    sha256: str


MODELS: dict[str, Known] = {
    "vidrestore-prior-small-v5": Known(
        "vidrestore-prior-small-v5.safetensors", "cd5f8d796c1799c5bcb645c1f8636f5385ae6b1eeda563140ac9d1834a94f99a"),
}
DEFAULT_WEIGHTS = "vidrestore-prior-small-v5"  # what enhance, eval and bench use when --weights is not given
WEIGHTS_DIR = Path(__file__).resolve().parent

META_CONFIG = "vidrestore.config"
META_VERSION = "vidrestore.version"
META_FORMAT = "vidrestore.format"
FORMAT_VERSION = "1"
RESERVED_KEYS = frozenset({META_CONFIG, META_VERSION, META_FORMAT})
DTYPES = ("F32", "F16", "BF16")  # the tensor types a weights file may hold
# Bounds of a file's model config, checked before anything is built: (least, most) of each size field, ten
# times and more the largest model made, far below what would exhaust memory; at most CONFIG_LEVELS entries
CONFIG_BOUNDS = {"channels": (1, 1024), "window": (1, 31), "head": (1, 1024), "widths": (1, 1024),
                 "blocks": (0, 64), "refine": (1, 1024)}
CONFIG_LEVELS = 6


def local_path(name: str) -> Path | None:
    """The bundled or Hub-cached copy of a named file; None if neither is on disk. Never uses the network."""
    location = MODELS[name].location
    if location.startswith(hub.PREFIX):
        return hub.cached_path(hub.parse(location))
    path = WEIGHTS_DIR / location
    return path if path.is_file() else None


def locate(spec: str | os.PathLike[str], *, offline: bool | None = None) -> tuple[Path, str | None]:
    """The local file of a weights spec (downloading into the Hub cache if needed) and the sha256 it must have
    (a named file's; None for a path or an unnamed ``hf://`` file). ``offline`` (default: ``HF_HUB_OFFLINE``)
    forbids network access."""
    spec = os.fspath(spec).strip() if isinstance(spec, (str, os.PathLike)) else ""
    if not spec:
        raise WeightsError("no weights given (expected a file, a known name or hf://owner/repo/file)")
    if spec.startswith(hub.PREFIX):
        return hub.download(hub.parse(spec), offline=offline), None
    path = Path(spec).expanduser()
    if _is_file(path):
        return path, None
    if path.is_dir():
        raise WeightsError(f"weights path is a directory, not a .safetensors file: {spec}")
    if os.path.lexists(path):
        raise WeightsError(f"weights path is not a regular file (a pipe or a device?): {spec}")
    known = MODELS.get(spec)
    if known is None:
        if os.sep in spec or "/" in spec or spec.startswith(("~", ".")) or path.suffix:
            raise WeightsError(f"weights file not found: {spec}")
        raise WeightsError(f"unknown weights {spec!r}: not a file and not a known name ({', '.join(sorted(MODELS))})")
    found = local_path(spec)
    if found is None and known.location.startswith(hub.PREFIX):
        found = hub.download(hub.parse(known.location), offline=offline)
    if found is None:
        raise WeightsError(f"weights {spec!r} are not installed ({known.location} is missing beside "
                           f"{WEIGHTS_DIR}): reinstall vidrestore, or pass --weights PATH")
    return found, known.sha256


def load_model(spec: str, device: "torch.device | str" = "cpu", dtype: "torch.dtype | None" = None, *,
               offline: bool | None = None, expected_sha256: str | None = None) -> "PriorNet":
    """Locate, verify and load weights into a model in eval mode on ``device`` (cast to ``dtype`` if given).
    ``expected_sha256`` adds a check for any file, paths included."""
    path, sha = locate(spec, offline=offline)
    for want in (sha, expected_sha256):
        if want is not None:
            verify_file(path, want, label=f"weights {spec!r}" if want == sha else None)
    model = model_from_file(path)
    return model.to(device=device, dtype=dtype).eval()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as err:
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from None
    return digest.hexdigest()


def verify_file(path: str | os.PathLike[str], expected: str, label: str | None = None) -> str:
    """Check a file's sha256 against ``expected``; return it, or raise WeightsError on a mismatch."""
    expected = expected.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise WeightsError(f"not a sha256 checksum (64 hex digits): {expected!r}")
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(f"checksum mismatch for {f'{label} ({path})' if label else path}: expected sha256 "
                           f"{expected[:16]}..., got {actual[:16]}... (the file is corrupt or not the one named; "
                           "delete it and download again)")
    return actual


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the complete new one: a hidden temporary file
    beside it, flushed and renamed into place, removed if anything (Ctrl-C included) stops the write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError as err:  # an unreadable folder on the way
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from None


def _first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an error's text, cut to ``limit`` characters (it may quote a file's metadata)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _open(path: Path, read: bool) -> tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...]]], dict]:
    """A safetensors file's metadata, each tensor's (dtype, shape), and (if ``read``) the tensors on the CPU."""
    from safetensors import safe_open

    if not _is_file(path):
        raise WeightsError(f"weights file not found: {path}")
    try:
        # held: a Ctrl-C while safetensors' Rust code calls torch comes out as a misleading parse error
        with interrupts.held(), safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            slices = {k: fh.get_slice(k) for k in fh.keys()}
            specs = {k: (sl.get_dtype(), tuple(sl.get_shape())) for k, sl in slices.items()}
            bad = next((k for k, (dt, _) in specs.items() if dt not in DTYPES), None)
            if bad is not None:
                raise WeightsError(f"unsupported weights file: tensor {bad!r} has dtype {specs[bad][0]!r} "
                                   f"(expected one of {', '.join(DTYPES)}): {path}")
            tensors = {k: fh.get_tensor(k) for k in fh.keys()} if read else {}
    except WeightsError:
        raise
    except OSError as err:
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from None
    except Exception as err:  # safetensors' own error type varies between versions
        detail = _first_line(err).removeprefix("Error while deserializing header: ")
        raise WeightsError(f"not a valid safetensors file ({detail}): {path}") from None
    return meta, specs, tensors


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata table of a safetensors file (empty if none), read without loading any tensor."""
    return _open(Path(path), read=False)[0]


def read_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
    """All tensors (on the CPU) and the metadata of a safetensors file, with one-line errors."""
    meta, _, tensors = _open(Path(path), read=True)
    return tensors, meta


def _config(meta: Mapping[str, str], path: Path) -> "PriorConfig":
    """The network config a file's metadata describes, each size field within ``CONFIG_BOUNDS``."""
    from vidrestore.model.prior_net import ARCH, prior_config_from_dict

    bad = f"invalid {META_CONFIG!r} metadata in {path}"
    if meta.get(META_FORMAT, FORMAT_VERSION) != FORMAT_VERSION:
        raise WeightsError(f"unsupported weights format {meta[META_FORMAT][:20]!r} (this vidrestore reads "
                           f"{FORMAT_VERSION!r}): {path}")
    if META_CONFIG not in meta:
        raise WeightsError(f"not vidrestore weights (no {META_CONFIG!r} in the safetensors metadata): {path}")
    try:
        data = json.loads(meta[META_CONFIG])
    except RecursionError:
        raise WeightsError(f"{bad}: nested too deeply") from None
    except ValueError as err:
        raise WeightsError(f"{bad}: {_first_line(err)}") from None
    if not isinstance(data, dict) or data.get("arch") != ARCH:
        raise WeightsError(f"{bad}: not a flow-prior network config (its \"arch\" is not {ARCH!r})")
    try:
        cfg = prior_config_from_dict(data)
    except Exception as err:
        raise WeightsError(f"{bad}: {_first_line(err)}") from None
    for name, (low, high) in CONFIG_BOUNDS.items():
        value = getattr(cfg, name)
        values = value if isinstance(value, tuple) else (value,)
        if len(values) > CONFIG_LEVELS or not all(
                isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values):
            raise WeightsError(f"{bad}: {name} {str(value)[:40]} is out of range (at most {CONFIG_LEVELS} whole "
                               f"numbers from {low} to {high})")
    return cfg


def _mismatch(model: Mapping[str, tuple[int, ...]], file: Mapping[str, tuple[int, ...]]) -> str | None:
    """How a file's tensor names and shapes differ from a model's, in a few words (None if they agree)."""
    def few(keys: list[str]) -> str:
        return ", ".join(sorted(keys)[:3]) + (", ..." if len(keys) > 3 else "")

    missing = [k for k in model if k not in file]
    unexpected = [k for k in file if k not in model]
    shapes = sorted(k for k in model if k in file and tuple(model[k]) != tuple(file[k]))
    parts = [f"{len(missing)} missing ({few(missing)})"] if missing else []
    parts += [f"{len(unexpected)} unexpected ({few(unexpected)})"] if unexpected else []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} with the wrong shape (e.g. {k}: file {list(file[k])}, model {list(model[k])})")
    return "; ".join(parts) or None


def model_from_file(path: str | os.PathLike[str]) -> "PriorNet":
    """Build the network a weights file's metadata describes and load its tensors (strict), on the CPU. Names
    and shapes are checked against the file's header before any tensor is read or allocated."""
    import torch

    from vidrestore.model.prior_net import PriorNet

    path = Path(path)
    meta, specs, _ = _open(path, read=False)
    cfg = _config(meta, path)
    try:
        with torch.device("meta"):  # names and shapes only: no memory, whatever the config says
            expected = {k: tuple(v.shape) for k, v in PriorNet(cfg).state_dict().items()}
    except Exception as err:
        raise WeightsError(f"cannot build the model described in {path}: {_first_line(err)}") from None
    problem = _mismatch(expected, {k: shape for k, (_, shape) in specs.items()})
    if problem:
        raise WeightsError(f"weights in {path} do not fit the {cfg.name!r} model: {problem}")
    tensors, _ = read_tensors(path)
    for key, t in tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise WeightsError(f"corrupt weights file (tensor {key!r} has NaN or infinite values): {path}")
    model = PriorNet(cfg)
    model.load_state_dict(tensors, strict=True)
    return model


def save_weights(model: "PriorNet", path: str | os.PathLike[str],
                 extra_metadata: Mapping[str, str] | None = None) -> str:
    """Write a model's tensors as safetensors (atomically) with its config and version in the metadata; return
    the file's sha256. The header's keys are sorted, so the same tensors and metadata always give the same bytes
    (the library writes them in hash-map order, which changes from one process to the next)."""
    from safetensors.torch import save

    from vidrestore.model.prior_net import PriorConfig, prior_config_to_json

    extra = dict(extra_metadata or {})
    if RESERVED_KEYS & set(extra) or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise ValueError(f"extra_metadata must map str to str, without the keys {', '.join(sorted(RESERVED_KEYS))}")
    if not isinstance(getattr(model, "config", None), PriorConfig):
        raise TypeError("save_weights needs a PriorNet (a model with a PriorConfig .config)")
    meta = {**extra, META_CONFIG: prior_config_to_json(model.config), META_VERSION: __version__,
            META_FORMAT: FORMAT_VERSION}
    # clone: views of one storage must be stored as separate tensors
    raw = save({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}, metadata=meta)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data section stays 8-byte aligned, as the library keeps it
    data = struct.pack("<Q", len(header)) + header + raw[8 + n:]
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()

