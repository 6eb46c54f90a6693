"""From run options to a ready model: device, dtype, the autocast rule, weights and the flip ensemble.

``enhance``, ``eval``, ``bench`` and ``train`` all set up their model here. Device and dtype are explicit
torch objects, never set process-wide. Parameters stay float32; fp16/bf16 compute runs under autocast
(softmax and the other sensitive parts stay float32 inside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidrestore import weights
from vidrestore.config import RunOptions
from vidrestore.errors import UsageError
from vidrestore.model.ensemble import FlipEnsemble


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("--device mps: Apple MPS is not available on this machine")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise UsageError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps")


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Map a precision name (checked by :func:`vidrestore.config.check_precision`) to the compute dtype on
    ``device``: auto is bf16 on CUDA devices that support it, else fp16 on CUDA; fp32 on CPU and MPS."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision == "fp32":
        return torch.float32
    if precision == "fp16":
        if device.type == "cpu":
            raise UsageError("--precision fp16 is not supported on the CPU (use fp32 or bf16)")
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype, param_dtype: torch.dtype = torch.float32):
    """The one autocast rule: float32 parameters with a half compute dtype run under autocast; anything else
    (float32 compute, or parameters already cast) runs as it is."""
    enabled = dtype != torch.float32 and param_dtype == torch.float32
    if not enabled:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


def param_dtype(model: torch.nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return p.dtype if p is not None else torch.float32


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout of the network's 4-D tensors on ``device``. On the CPU, channels-last: oneDNN's convolutions
    then need no reordering, and a 640x360 frame at 2x interpolation runs about a quarter faster (same sums,
    differences of about 1e-5). Elsewhere the default layout (not measured on GPUs yet)."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


@dataclass(frozen=True)
class Runtime:
    """A model ready to run: ``model`` is the network (wrapped by the flip ensemble when asked) on ``device``;
    ``dtype`` the compute precision; ``label`` what was loaded."""

    model: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    label: str

    @property
    def network(self) -> torch.nn.Module:
        """The network itself, without the ensemble."""
        return self.model.model if isinstance(self.model, FlipEnsemble) else self.model

    def autocast(self):
        return autocast(self.device, self.dtype, param_dtype(self.model))

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")


def gpu_count() -> int:
    """The CUDA devices this process can use (0 where there are none)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def load(options: RunOptions, model: torch.nn.Module | None = None, device: torch.device | None = None,
         dtype: torch.dtype | None = None) -> Runtime:
    """Resolve ``options`` into a :class:`Runtime`. ``model`` (an in-memory network: tests, bench with random
    weights, training's validation), ``device`` and ``dtype`` replace what the options would resolve to.
    Weights are located, sha256-checked and loaded with float32 parameters."""
    dev = device if device is not None else resolve_device(options.device)
    dt = dtype if dtype is not None else resolve_dtype(options.precision, dev)
    if model is None:
        spec = options.weights or weights.DEFAULT_WEIGHTS
        model = weights.load_model(spec, dev, torch.float32)
        label = spec
    else:
        label = getattr(getattr(model, "config", None), "name", type(model).__name__)
    return Runtime(model=wrap(model, options, dev), device=dev, dtype=dt, label=label)


def wrap(network: torch.nn.Module, options: RunOptions, device: torch.device) -> torch.nn.Module:
    """A network set up to run on ``device``: its memory layout, and the flip ensemble when asked."""
    network = network.to(device, memory_format=memory_format(device))
    return FlipEnsemble(network, options.ensemble) if options.ensemble > 1 else network
