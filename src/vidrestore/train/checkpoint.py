"""Resumable training checkpoints: safetensors + JSON only (no pickle).

A checkpoint is a folder ``<run>/ckpt`` holding

* ``model.safetensors``  the model's state dict;
* ``optim.safetensors``  the optimizer's per-parameter tensors flattened as ``state.<id>.<name>``, and
  the random generators' states as ``rng.<name>``;
* ``state.json``         step, seconds, model config, optimizer hyper-parameters and scalars,
  anything else the loop keeps (last validation, ...).

It is written to ``ckpt.tmp`` and swapped in with renames, so an interrupted save leaves the previous
checkpoint intact (``ckpt.old`` is used if the swap itself was interrupted).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vidrestore.errors import InputError

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optim.safetensors"
STATE_FILE = "state.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state -> (tensors for safetensors, JSON-able rest)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[name] = _jsonable(value)
    return tensors, {"param_groups": _jsonable(sd["param_groups"]), "scalars": scalars}


def unflatten_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith("state."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> Path:
    run_dir = Path(run_dir)
    final, tmp, old = run_dir / "ckpt", run_dir / "ckpt.tmp", run_dir / "ckpt.old"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / MODEL_FILE))
    opt_tensors, opt_meta = flatten_optimizer(optimizer)
    for name, st in rng.items():
        opt_tensors[f"rng.{name}"] = st.detach().to("cpu").contiguous().clone()
    save_file(opt_tensors, str(tmp / OPTIM_FILE))
    payload = dict(state)
    payload["optimizer"] = opt_meta
    (tmp / STATE_FILE).write_text(json.dumps(payload, indent=1, sort_keys=True))
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    for name in ("ckpt", "ckpt.old"):
        p = Path(run_dir) / name
        if (p / STATE_FILE).is_file() and (p / MODEL_FILE).is_file() and (p / OPTIM_FILE).is_file():
            return p
    return None


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model and optimizer in place; returns (state, rng states)."""
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text())
        weights = load_file(str(path / MODEL_FILE))
        opt = load_file(str(path / OPTIM_FILE))
    except Exception as err:  # corrupt JSON or safetensors
        raise InputError(f"cannot read checkpoint {path}: {err}") from None
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError:  # shape mismatch
        raise InputError(f"checkpoint {path} does not match the model (tensor shapes differ)") from None
    if missing or unexpected:
        raise InputError(
            f"checkpoint {path} does not match the model (missing {len(missing)}, unexpected {len(unexpected)} tensors)"
        )
    device = next(model.parameters()).device
    opt_state = {k: v.to(device) if k.startswith("state.") and v.dim() > 0 else v for k, v in opt.items()}
    unflatten_optimizer(optimizer, opt_state, state.pop("optimizer"))
    rng = {k[len("rng."):]: v for k, v in opt.items() if k.startswith("rng.")}
    return state, rng
