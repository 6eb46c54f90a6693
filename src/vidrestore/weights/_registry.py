"""The weights registry: ``registry.json`` beside this file maps a name to a file, its sha256,
the model size it builds and where it lives on the Hugging Face Hub.

Registered files are looked for first in the registry's own folder (the bundled copies,
shipped as package data), then in the Hub cache, then on the Hub.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from vidrestore.errors import WeightsError
from vidrestore.weights._files import write_atomic

REGISTRY_FORMAT = 1
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class HubLocation:
    """A file in a Hugging Face Hub model repository (``revision`` None means the default branch)."""

    repo_id: str
    filename: str
    revision: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "filename": self.filename, "revision": self.revision}

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.repo_id}/{self.filename}{rev}"


@dataclass(frozen=True)
class WeightsEntry:
    """One registered set of weights.

    ``file`` is relative to the registry's folder; ``sha256`` is None while the weights are planned
    but not trained yet; ``config`` is the size it builds (a ``PRIOR_CONFIGS`` name: "tiny", "small",
    "default"); ``bytes`` and ``params`` are informational (file size, number of stored values).
    """

    name: str
    file: str
    sha256: str | None
    config: str
    description: str = ""
    hub: HubLocation | None = None
    bytes: int | None = None
    params: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "config": self.config,
            "bytes": self.bytes,
            "params": self.params,
            "description": self.description,
            "hub": self.hub.to_json() if self.hub else None,
        }


@dataclass(frozen=True, eq=False)
class Registry(Mapping[str, WeightsEntry]):
    """The parsed registry, a read-only mapping name -> WeightsEntry; bundled files sit in its folder."""

    path: Path
    entries: Mapping[str, WeightsEntry]

    def __getitem__(self, name: str) -> WeightsEntry:
        return self.entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def bundled_path(self, entry: WeightsEntry) -> Path:
        return self.folder / entry.file


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise WeightsError(
            f"invalid weights name {name!r}: use lowercase letters, digits, '.', '_' and '-' (e.g. vidrestore-prior-small-v1)"
        )
    return name


def _opt_str(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise WeightsError(f"{what} must be a string or null")


def _opt_int(value: Any, what: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise WeightsError(f"{what} must be a non-negative integer or null")


def _parse_entry(name: str, raw: Any, where: Path) -> WeightsEntry:
    what = f"weights registry {where}: entry {name!r}"
    if not isinstance(raw, dict):
        raise WeightsError(f"{what} is not a table")
    file = raw.get("file")
    config = raw.get("config")
    if not isinstance(file, str) or not file or Path(file).name != file:
        raise WeightsError(f"{what}: 'file' must be a plain file name")
    if not isinstance(config, str) or not config:
        raise WeightsError(f"{what}: 'config' must name a model size")
    sha = _opt_str(raw.get("sha256"), f"{what}: 'sha256'")
    if sha is not None:
        sha = sha.lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise WeightsError(f"{what}: 'sha256' is not 64 hex digits")
    hub = None
    hub_raw = raw.get("hub")
    if hub_raw is not None:
        if not isinstance(hub_raw, dict) or not isinstance(hub_raw.get("repo_id"), str) \
                or not isinstance(hub_raw.get("filename"), str):
            raise WeightsError(f"{what}: 'hub' needs 'repo_id' and 'filename'")
        hub = HubLocation(hub_raw["repo_id"], hub_raw["filename"],
                          _opt_str(hub_raw.get("revision"), f"{what}: 'hub.revision'"))
    return WeightsEntry(
        name=name,
        file=file,
        sha256=sha,
        config=config,
        description=_opt_str(raw.get("description"), f"{what}: 'description'") or "",
        hub=hub,
        bytes=_opt_int(raw.get("bytes"), f"{what}: 'bytes'"),
        params=_opt_int(raw.get("params"), f"{what}: 'params'"),
    )


def _read_raw(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"format": REGISTRY_FORMAT, "weights": {}}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"cannot read weights registry {path}: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("weights"), dict):
        raise WeightsError(f"weights registry {path} has no 'weights' table")
    if raw.get("format", REGISTRY_FORMAT) != REGISTRY_FORMAT:
        raise WeightsError(f"weights registry {path} has unsupported format {raw.get('format')!r}")
    return raw


def parse_registry(path: str | os.PathLike[str]) -> Registry:
    """Read and validate a registry file (a missing file is an empty registry)."""
    path = Path(path)
    raw = _read_raw(path)
    entries = {name: _parse_entry(name, item, path) for name, item in raw["weights"].items()}
    for name in entries:
        check_name(name)
    return Registry(path=path, entries=entries)


def write_registry(path: str | os.PathLike[str], entries: Mapping[str, WeightsEntry]) -> None:
    """Write a registry file atomically, entries sorted by name."""
    doc = {
        "format": REGISTRY_FORMAT,
        "weights": {name: entries[name].to_json() for name in sorted(entries)},
    }
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
