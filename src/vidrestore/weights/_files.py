"""Weights files on disk: sha256, safetensors save (atomic, with metadata) and checked reading.

Only the safetensors format is used: no pickle is ever loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator, Mapping

from vidrestore import interrupts
from vidrestore.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

META_CONFIG = "vidrestore.config"
META_VERSION = "vidrestore.version"
META_FORMAT = "vidrestore.format"
FORMAT_VERSION = "1"
RESERVED_KEYS = frozenset({META_CONFIG, META_VERSION, META_FORMAT})

_CHUNK = 1 << 20
# A safetensors file starts with an 8-byte little-endian header length, then a JSON header.
_MAX_HEADER = 100 * 1024 * 1024
# safetensors dtypes the model's tensors may have, and their sizes in bytes: anything else is refused
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as err:
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from None
    return digest.hexdigest()


def normalize_sha256(value: str) -> str:
    value = value.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise WeightsError(f"not a sha256 checksum (64 hex digits): {value!r}")
    return value


def verify_file(path: str | os.PathLike[str], expected: str, label: str | None = None) -> str:
    """Check a file's sha256 against ``expected``; return it, or raise WeightsError on a mismatch."""
    expected = normalize_sha256(expected)
    actual = sha256_file(path)
    if actual != expected:
        what = f"{label} ({path})" if label else str(path)
        raise WeightsError(
            f"checksum mismatch for {what}: expected sha256 {expected[:16]}..., got {actual[:16]}... "
            "(the file is corrupt or not the registered one; delete it and download again)"
        )
    return actual


def _check_header(path: Path) -> dict:
    """Parse and sanity-check a safetensors header without trusting it: clear errors for non-safetensors,
    truncated or padded files. Returns the parsed header."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise WeightsError(f"not a safetensors file (too short, {size} bytes): {path}")
            (hlen,) = struct.unpack("<Q", head)
            if hlen == 0 or hlen > _MAX_HEADER or 8 + hlen > size:
                raise WeightsError(f"not a valid safetensors file (bad header length): {path}")
            raw = fh.read(hlen)
    except OSError as err:
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise WeightsError(f"not a valid safetensors header (unreadable JSON): {path}") from None
    if not isinstance(header, dict):
        raise WeightsError(f"not a valid safetensors file (header is not a table): {path}")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        end = max(end, _check_entry(key, info, path))
    if 8 + hlen + end != size:
        state = "truncated" if 8 + hlen + end > size else "has trailing bytes"
        raise WeightsError(f"corrupt weights file ({state}: {size} bytes, header says {8 + hlen + end}): {path}")
    return header


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(key: str, info: object, path: Path) -> int:
    """One tensor's header entry: a dtype the model uses, a shape, and data offsets that hold exactly
    that many bytes. Returns where its data ends."""
    offsets = info.get("data_offsets") if isinstance(info, dict) else None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise WeightsError(f"not a valid safetensors file (tensor {key!r} has no data offsets): {path}")
    assert isinstance(info, dict)
    dtype = info.get("dtype")
    if dtype not in DTYPE_BYTES:
        raise WeightsError(f"unsupported weights file: tensor {key!r} has dtype {str(dtype)[:20]!r} "
                           f"(expected one of {', '.join(DTYPE_BYTES)}): {path}")
    shape = info.get("shape")
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_int(n) for n in shape)):
        raise WeightsError(f"not a valid safetensors file (tensor {key!r} has no valid shape): {path}")
    if math.prod(shape) * DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
        raise WeightsError(f"not a valid safetensors file (tensor {key!r}: its shape does not match its "
                           f"data size): {path}")
    return offsets[1]


def read_header(path: str | os.PathLike[str]) -> dict:
    """The checked safetensors header of a file (tensor entries and ``__metadata__``), read without
    loading any tensor."""
    path = Path(path)
    if not _is_file(path):
        raise WeightsError(f"weights file not found: {path}")
    return _check_header(path)


def _is_file(path: Path) -> bool:
    """``path.is_file()``, with an unreadable folder on the way a WeightsError (not a PermissionError)."""
    try:
        return path.is_file()
    except OSError as err:
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` table of a safetensors file (empty if it has none)."""
    path = Path(path)
    return metadata_of(read_header(path), path)


def metadata_of(header: Mapping[str, object], path: Path) -> dict[str, str]:
    """The ``__metadata__`` table of a checked header (empty if it has none)."""
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise WeightsError(f"not a valid safetensors file (metadata is not a string table): {path}")
    return dict(meta)


def read_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
    """All tensors (on the CPU) and the metadata of a safetensors file, with one-line errors."""
    from safetensors import safe_open

    path = Path(path)
    meta = read_metadata(path)  # validates the header and the file length first
    try:
        tensors: dict[str, torch.Tensor] = {}
        # held: a KeyboardInterrupt raised while safetensors' Rust code is calling torch comes out
        # as a misleading "not a valid safetensors file" (the signal takes effect after the read)
        with interrupts.held(), safe_open(str(path), framework="pt", device="cpu") as fh:
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
    except WeightsError:
        raise
    except Exception as err:  # safetensors' own error type varies between versions
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"not a valid safetensors file ({msg}): {path}") from None
    return tensors, meta


def tensors_to_bytes(tensors: Mapping[str, "torch.Tensor"], metadata: Mapping[str, str]) -> bytes:
    """safetensors bytes with a canonical header (keys sorted), so the same tensors and metadata always
    give the same bytes and sha256 (the library writes its header's keys in hash-map order, which
    changes from one process to the next)."""
    from safetensors.torch import save

    raw = save(dict(tensors), metadata=dict(metadata))
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned, as the library does
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def _temp_beside(path: Path) -> tuple[int, str]:
    """A hidden temporary file in ``path``'s folder, readable by all like a normally created file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)
    return fd, tmp


@contextlib.contextmanager
def _atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` only once the block completes.

    The data goes to a hidden temporary file beside ``path``; it is flushed to disk and renamed
    into place at the end, and removed if the block raises (Ctrl-C included).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the complete new one."""
    with _atomic_file(path) as fh:
        fh.write(data)


def copy_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a file so that ``dst`` is either the old file or the complete new one, never a partial one."""
    with _atomic_file(dst) as out, open(src, "rb") as inp:
        for chunk in iter(lambda: inp.read(_CHUNK), b""):
            out.write(chunk)
