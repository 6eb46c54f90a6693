"""The run options every command that runs the model takes (``enhance``, ``eval``, ``bench``), declared once.

``@run_options`` adds the click options; ``run_options_from(kwargs)`` pops them into a frozen
:class:`~vidrestore.config.RunOptions`. Light: no torch.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from vidrestore.config import DEFAULT_TILE_OVERLAP, ENSEMBLE_HELP, PRECISIONS, RunOptions

_OPTIONS = (
    click.option("--weights", default=None,
                 help="Weights: a known name, a .safetensors path or hf://owner/repo/file@rev "
                      "[default: the bundled default]."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
    click.option("--precision", default="auto", show_default=True, metavar="|".join(PRECISIONS),
                 help="Compute precision (auto: bf16/fp16 on CUDA, fp32 elsewhere)."),
    click.option("--batch", type=int, default=1, show_default=True, help="Windows per forward pass."),
    click.option("--ensemble", type=int, default=1, show_default=True, help=ENSEMBLE_HELP),
    click.option("--tile", type=int, default=None, help="Process frames in tiles of this many pixels (less memory) "
                 "[default: whole frames; on the CPU, 512 above 1080p]."),
    click.option("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP, show_default=True,
                 help="Context pixels shared by neighbouring tiles."),
    click.option("--gpu-memory", "gpu_memory", type=float, default=None, metavar="GB",
                 help="CUDA memory a forward pass may use; frames are tiled to fit [default: min(8, half the "
                      "free memory)]; 0: no limit."),
)
_NAMES = ("weights", "device", "precision", "batch", "ensemble", "tile", "tile_overlap", "gpu_memory")


threads_option = click.option(
    "--threads", type=int, default=None, metavar="N",
    help="CPU threads for the model, OpenCV and the video decoder/encoder [default: the cores this process may "
         "use (CPU affinity and cgroup quota)].")


def setup_threads(threads: int | None) -> int:
    """The CLI's one call that sets the thread counts (before the run, after the light checks)."""
    from vidrestore import threads as t
    from vidrestore.config import check_threads

    check_threads(threads)
    return t.apply(t.resolve(threads))


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with the run options."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def run_options_from(kwargs: dict[str, Any]) -> RunOptions:
    """Pop the run options out of a command's keyword arguments."""
    v = {name: kwargs.pop(name) for name in _NAMES}
    return RunOptions(weights=v["weights"], device=v["device"], precision=v["precision"], batch=v["batch"],
                      ensemble=v["ensemble"], tile=v["tile"], tile_overlap=v["tile_overlap"],
                      gpu_memory_gb=v["gpu_memory"])
