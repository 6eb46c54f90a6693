"""Hugging Face Hub access: ``hf://owner/repo/path/file[@revision]`` specs, the local cache, downloads; every
failure (offline with nothing cached, Hub unreachable, repo or file not found) is a one-line WeightsError."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidrestore.errors import WeightsError

PREFIX = "hf://"


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face Hub model repository (``revision`` None: the default branch)."""

    repo_id: str
    filename: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


def parse(spec: str) -> HubFile:
    """``hf://owner/repo/path/to/file.safetensors[@revision]`` -> HubFile."""
    rest, revision = spec[len(PREFIX):], None
    if not spec.startswith(PREFIX):
        raise WeightsError(f"not an hf:// weights spec: {spec!r}")
    if "@" in rest:
        rest, _, revision = rest.rpartition("@")
        if not revision:
            raise WeightsError(f"empty revision after '@' in {spec!r}")
    parts = rest.split("/")
    if len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
        raise WeightsError(f"expected hf://owner/repo/path/file.safetensors[@revision], got {spec!r}")
    return HubFile("/".join(parts[:2]), "/".join(parts[2:]), revision)


def offline_from_env() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network access, read now (huggingface_hub reads it at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def cache_dir() -> str | None:
    """The Hub cache folder the environment names, read now (huggingface_hub reads it at import); None: its
    default."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    home = os.environ.get("HF_HOME")
    return os.path.join(os.path.expanduser(home), "hub") if home else None


def cached_path(loc: HubFile) -> Path | None:
    """The file's path in the local Hub cache, or None; never uses the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(loc.repo_id, loc.filename, cache_dir=cache_dir(), revision=loc.revision)
    except Exception:  # an invalid repo id or revision: simply not cached
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def download(loc: HubFile, *, offline: bool | None = None) -> Path:
    """The file from the Hub cache, downloaded into it first unless ``offline`` (default: ``HF_HUB_OFFLINE``)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import utils as errors  # the error classes live here in 0.20 .. 2.x

    from vidrestore._version import __version__

    offline = offline_from_env() if offline is None else offline
    try:
        return Path(hf_hub_download(loc.repo_id, loc.filename, revision=loc.revision, cache_dir=cache_dir(),
                                    local_files_only=offline, library_name="vidrestore",
                                    library_version=__version__))
    except errors.LocalEntryNotFoundError:
        if offline:
            raise WeightsError(f"{loc} is not in the Hugging Face cache and offline mode is on (HF_HUB_OFFLINE); "
                               "download it once with network access or pass a local file") from None
        raise WeightsError(f"cannot download {loc}: the Hugging Face Hub is unreachable and the file is not "
                           "cached; check the network or pass a local weights file") from None
    except errors.RepositoryNotFoundError:
        raise WeightsError(f"cannot download {loc}: repository {loc.repo_id!r} not found (or private)") from None
    except errors.RevisionNotFoundError:
        raise WeightsError(f"cannot download {loc}: revision {loc.revision!r} not found") from None
    except errors.EntryNotFoundError:
        raise WeightsError(f"cannot download {loc}: file {loc.filename!r} not found in {loc.repo_id}") from None
    except Exception as err:  # invalid ids, network and HTTP errors, OSError from the cache, ...
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"cannot download {loc}: {msg[:160]}") from None
