"""The Python API: ``load_model``, ``enhance`` (a file) and ``enhance_frames`` (an iterable of frames).

    import vidrestore

    model = vidrestore.load_model()                       # the bundled default, on the best device
    vidrestore.enhance("in.mp4", "out.mp4", fps_x=8, model=model)
    for frame in vidrestore.enhance_frames(frames, fps_x=2, mode="interp"):
        ...                                               # HxWx3 uint8 RGB arrays, K per input frame

Each goes through the same run path as the ``vidrestore`` command (:mod:`vidrestore.runtime`, the engine,
the pipeline). Run options (``weights``, ``device``, ``precision``, ``batch``, ``ensemble``, ``tile``,
``tile_overlap``, ``gpu_memory_gb``) are keyword arguments, as in :class:`vidrestore.config.RunOptions`.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from vidrestore import pipeline, runtime
from vidrestore.config import (DEFAULT_FACTOR, DEFAULT_SCENE_THRESHOLD, EnhanceConfig, RunOptions,
                               check_factor_mode)
from vidrestore.engine import Engine, EngineConfig
from vidrestore.errors import OutputError, UsageError
from vidrestore.model.prior_net import PriorNet


def load_model(name: str | None = None, device: str | torch.device = "auto") -> PriorNet:
    """The flow-prior network (:class:`~vidrestore.model.prior_net.PriorNet`) of weights ``name`` (a registered
    name, a .safetensors path or an hf:// reference; None: the bundled default), sha256-checked, in eval mode
    on ``device``, with float32 parameters."""
    dev = device if isinstance(device, torch.device) else runtime.resolve_device(device)
    rt = runtime.load(RunOptions(weights=name), device=dev)
    return rt.model.eval()


def _runtime(model: torch.nn.Module | None, run: RunOptions) -> runtime.Runtime:
    if model is None:
        return runtime.load(run)
    param = next(model.parameters(), None)
    device = param.device if param is not None and run.device == "auto" else None
    return runtime.load(run, model=model, device=device)


def _factor(fps_x: int | None, mode: str) -> int:
    """``fps_x`` as given (None: the default, 2), refused where deblur mode, which adds no frames, is asked
    for more, as the command line does."""
    if mode == "deblur" and fps_x not in (None, 1):
        raise UsageError(f"mode='deblur' keeps the frame rate, so fps_x={fps_x!r} contradicts it: leave out fps_x, "
                         "or use mode='joint' to deblur and interpolate")
    return DEFAULT_FACTOR if fps_x is None else fps_x


def enhance(src: str | os.PathLike[str], dst: str | os.PathLike[str], fps_x: int | None = None,
            mode: str = "joint", *, model: torch.nn.Module | None = None, codec: str | None = None,
            crf: int | None = None, preset: str | None = None, scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
            overwrite: bool = False, fps: str | Fraction | None = None, allow_gaps: bool = False,
            progress: Callable[[pipeline.Progress], None] | None = None,
            notes: Callable[[str], None] | None = None, threads: int | None = None,
            adapt: float | str | None = None, save_adapted: str | os.PathLike[str] | None = None,
            **run_options: Any) -> pipeline.RunSummary:
    """Enhance the video file ``src`` into ``dst`` (``vidrestore enhance``): N input frames become N*fps_x,
    audio and subtitles are kept, and nothing is written unless the whole job succeeds. ``model``: a network
    from :func:`load_model`, reused across calls (else ``weights=`` or the default is loaded). Returns the
    run's summary (frames, rates, seconds, notes). Raises :class:`vidrestore.errors.VidrestoreError`.
    ``src``/``dst`` may be image sequences (a folder, or a pattern such as ``frames/%06d.png``); ``fps``: an
    input sequence's rate, as ``--fps``. ``codec`` None: the output container's default. ``allow_gaps``:
    as ``--allow-gaps``. ``threads``: as ``--threads`` (the model's, OpenCV's and the codecs'; None: the cores
    available: set on the first run of a process, unless a worker or the command line set them). ``adapt``:
    seconds or "auto", as ``--adapt`` (the network fine-tuned on this video first; ``model`` is never changed);
    ``save_adapted``: as ``--save-adapted``."""
    run = RunOptions(**run_options)
    config = EnhanceConfig(input=Path(src), output=Path(dst), factor=_factor(fps_x, mode), mode=mode, run=run,
                           codec=codec, crf=crf,
                           preset=preset, scene_threshold=scene_threshold or DEFAULT_SCENE_THRESHOLD,
                           scene_detect=scene_threshold is not None, overwrite=overwrite, fps=fps,
                           allow_gaps=allow_gaps, threads=threads, adapt=adapt,
                           save_adapted=Path(save_adapted) if save_adapted is not None else None)
    try:
        return pipeline.run(config, progress=progress, notes=notes, loaded=_runtime(model, run))
    except OutputError as err:
        if "--overwrite" not in str(err):
            raise
        # the command's hint, in the words of this function's arguments
        raise OutputError(str(err).replace("use --overwrite", "pass overwrite=True")) from None


def enhance_frames(frames: Iterable[np.ndarray], fps_x: int | None = None, mode: str = "joint", *,
                   model: torch.nn.Module | None = None, scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
                   **run_options: Any) -> Iterator[np.ndarray]:
    """Enhance a stream of HxWx3 uint8 (or uint16) RGB frames: yields fps_x frames per input frame, in order,
    each the input's size and type (in ``interp`` mode the input frames themselves). Frames are pulled
    lazily, so a long stream holds only a few frames at a time."""
    run = RunOptions(**run_options)
    factor = _factor(fps_x, mode)
    check_factor_mode(factor, mode)
    yield from Engine(_runtime(model, run), EngineConfig.of(factor, mode, run, scene_threshold)).process(frames)
