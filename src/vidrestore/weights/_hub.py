"""Hugging Face Hub access: ``hf://owner/repo/path/file@revision`` specs, the local cache, downloads.

Every failure (offline with nothing cached, Hub unreachable, repo or file not found) becomes
a one-line WeightsError.
"""

from __future__ import annotations

import os
from pathlib import Path

from vidrestore.errors import WeightsError
from vidrestore.weights._registry import HubLocation

HF_PREFIX = "hf://"
_TRUE = {"1", "ON", "YES", "TRUE"}


def env_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no network access, read now."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in _TRUE


def cache_dir() -> str | None:
    """The Hub cache folder from the environment, read at call time (huggingface_hub reads it only
    once, at import); None lets huggingface_hub use its default."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return os.path.expandvars(os.path.expanduser(value))
    home = os.environ.get("HF_HOME")
    if home:
        return os.path.join(os.path.expandvars(os.path.expanduser(home)), "hub")
    return None


def parse_hf_spec(spec: str) -> HubLocation:
    """``hf://owner/repo/path/to/file.safetensors[@revision]`` -> HubLocation."""
    if not spec.startswith(HF_PREFIX):
        raise WeightsError(f"not an hf:// weights spec: {spec!r}")
    rest = spec[len(HF_PREFIX):]
    revision = None
    if "@" in rest:
        rest, _, revision = rest.rpartition("@")
        if not revision:
            raise WeightsError(f"empty revision after '@' in {spec!r}")
    parts = [p for p in rest.split("/")]
    if len(parts) < 3 or any(not p or p in (".", "..") for p in parts):
        raise WeightsError(f"expected hf://owner/repo/path/file.safetensors[@revision], got {spec!r}")
    return HubLocation(repo_id="/".join(parts[:2]), filename="/".join(parts[2:]), revision=revision)


def cached_path(loc: HubLocation) -> Path | None:
    """The file's path in the local Hub cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(loc.repo_id, loc.filename, cache_dir=cache_dir(), revision=loc.revision)
    except Exception:  # an invalid repo id or revision: simply not cached
        return None
    if isinstance(found, str) and Path(found).is_file():
        return Path(found)
    return None


def download(loc: HubLocation, *, offline: bool | None = None) -> Path:
    """``hf_hub_download`` into the Hub cache (only the cache when offline) with one-line errors."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import utils as hf_errors  # the error classes live here in 0.20 .. 2.x

    from vidrestore._version import __version__

    if offline is None:
        offline = env_offline()
    try:
        path = hf_hub_download(
            loc.repo_id,
            loc.filename,
            revision=loc.revision,
            cache_dir=cache_dir(),
            local_files_only=offline,
            library_name="vidrestore",
            library_version=__version__,
        )
    except hf_errors.LocalEntryNotFoundError:
        if offline:
            raise WeightsError(
                f"{loc} is not in the Hugging Face cache and offline mode is on (HF_HUB_OFFLINE); "
                "download it once with network access (vidrestore weights download) or pass a local file"
            ) from None
        raise WeightsError(
            f"cannot download {loc}: the Hugging Face Hub is unreachable and the file is not cached; "
            "check the network or pass a local weights file"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise WeightsError(f"cannot download {loc}: repository {loc.repo_id!r} not found (or private)") from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsError(f"cannot download {loc}: revision {loc.revision!r} not found") from None
    except hf_errors.EntryNotFoundError:
        raise WeightsError(f"cannot download {loc}: file {loc.filename!r} not found in {loc.repo_id}") from None
    except hf_errors.HFValidationError as err:
        raise WeightsError(f"invalid Hugging Face location {loc}: {str(err).splitlines()[0]}") from None
    except Exception as err:  # network errors, HTTP errors, OSError from the cache, ...
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"cannot download {loc}: {msg}") from None
    return Path(path)
