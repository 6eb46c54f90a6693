"""What a training run is asked to do: :class:`TrainConfig`, made of frozen parts that validate themselves.

* :class:`RunConfig`: where the run lives, the device, the seed, this invocation's time budget, logging,
  checkpoints and validation;
* :class:`ModelSetup`: the network (size, tensor changes, the inference options it trains with), the
  weights it starts from and the parts it trains;
* :class:`DataConfig`: the batches (size, crop, synthetic scenes, footage and their mix);
* :class:`ScheduleConfig`: AdamW with linear warm-up and cosine decay;
* :class:`~vidrestore.train.losses.LossConfig`: the loss.

Every field has one flat option name, the ``vidrestore train`` flag without its dashes (``--max-speed`` is
``max_speed``); recipes use the same names. :func:`train_config` builds a config from flat options and
:meth:`TrainConfig.updated` changes some, so the CLI, recipes and tests never spell the grouping out.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from vidrestore.errors import UsageError
from vidrestore.model.network import CONFIGS, InferenceOptions, ModelConfig, options_from_dict
from vidrestore.synth.scenes import SceneConfig
from vidrestore.train.losses import LossConfig

SOURCES = ("synthetic", "clips", "videos")


@dataclass(frozen=True)
class RunConfig:
    out: str  # run folder: checkpoints, log.jsonl, final.safetensors
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; fp32 master weights)
    seed: int = 0
    resume: bool = False
    minutes: float | None = None  # time budget of this invocation (None: until the schedule's last step)
    export: str | None = None  # default: <out>/final.safetensors
    log_every: int = 25
    val_every: int = 500
    ckpt_every: int = 250
    val_count: int = 16
    val_size: int = 128

    def __post_init__(self) -> None:
        if not self.out:
            raise UsageError("--out DIR is required")
        if self.minutes is not None and not (self.minutes > 0):
            raise UsageError("--minutes must be > 0")
        for name in ("log_every", "val_every", "ckpt_every", "val_count"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        if self.val_size < 16:
            raise UsageError("val_size must be >= 16")


@dataclass(frozen=True)
class ModelSetup:
    size: str = "small"  # tiny | small | default (vidrestore.model.CONFIGS)
    # changes to the size's ModelConfig, i.e. to which tensors exist (e.g. fine_flow=0: no 1/4-scale stage)
    model_changes: tuple[tuple[str, Any], ...] = ()
    options: InferenceOptions = InferenceOptions()  # the parameter-free stages the run trains with
    init: str | None = None  # weights (name or path) a fresh run starts from (fine-tuning); unused on resume
    # train only these parts of the network (top-level modules of VidRestoreNet, e.g. "key_branch");
    # every other parameter stays frozen. Empty: train everything.
    train_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.size not in CONFIGS:
            raise UsageError(f"--size {self.size!r}: choose from {', '.join(CONFIGS)}")
        self.config  # noqa: B018  validates the changes

    @property
    def config(self) -> ModelConfig:
        changes = dict(self.model_changes)
        names = {f.name for f in dataclasses.fields(ModelConfig)} - {"name"}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise UsageError(f"model_changes: {unknown[0]!r} is not a model config field; "
                             f"choose from {', '.join(sorted(names))}")
        if "channels" in changes:
            changes["channels"] = tuple(changes["channels"])
        return dataclasses.replace(CONFIGS[self.size], **changes)


@dataclass(frozen=True)
class DataConfig:
    batch: int = 8
    crop: int = 96  # training crop (rounded down to the model's multiple)
    factor: int = 8  # target times j/factor
    random_t_prob: float = 0.3  # synthetic batches whose target times are random in (0,1)
    subframes: int = 8  # synthetic sub-frames per input interval (>= 8, multiple of factor)
    max_speed: float = 24.0  # synthetic motion: px per input interval at the crop size
    exposure: tuple[float, float] = (0.0, 1.0)  # synthetic exposure range, fraction of the frame interval
    sharp_prob: float = 0.15  # synthetic samples with sharp inputs (exposure 0)
    noise: float = 0.01  # max std of the noise added to synthetic inputs (half of the samples)
    mix_synthetic: float = 1.0
    mix_clips: float | None = None  # None: 0.25 if ``clips`` is given, else 0
    mix_videos: float | None = None  # None: 0.5 if ``videos`` is given, else 0
    textures: tuple[str, ...] = ()  # folders/files of images or videos for synthetic textures
    clips: str | None = None  # sharp ordinary-rate footage (interpolation samples)
    clip_strides: tuple[int, ...] = (2,)
    clip_scale: float = 0.25
    videos: str | None = None  # high-frame-rate footage (Adobe240-style samples)
    video_scale: float = 0.5
    holdout_frames: int = 0  # the first frames of every video (clips, videos, textures) are never used

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise UsageError("--batch must be >= 1")
        if self.crop < 16:
            raise UsageError("--crop must be >= 16")
        if self.factor < 2:
            raise UsageError("factor must be >= 2")
        if self.holdout_frames < 0:
            raise UsageError("--holdout-frames must be >= 0")
        if not self.clip_scale > 0:
            raise UsageError("--clip-scale must be > 0")
        if not self.video_scale > 0:
            raise UsageError("video_scale must be > 0")
        if not (0.0 <= self.sharp_prob <= 1.0):
            raise UsageError(f"--sharp-prob {self.sharp_prob}: must lie in [0, 1]")
        if not self.noise >= 0:
            raise UsageError(f"--noise {self.noise}: must be >= 0")
        lo, hi = self.exposure
        if not (0.0 <= lo <= hi <= 1.0):
            raise UsageError(f"--exposure {lo} {hi}: need 0 <= MIN <= MAX <= 1")
        self.mix()
        self.scene(self.crop)

    def mix(self) -> dict[str, float]:
        """The data mix weights per source (validated)."""
        clips = self.mix_clips if self.mix_clips is not None else (0.25 if self.clips else 0.0)
        videos = self.mix_videos if self.mix_videos is not None else (0.5 if self.videos else 0.0)
        mix = {"synthetic": float(self.mix_synthetic), "clips": float(clips), "videos": float(videos)}
        if any(v < 0 for v in mix.values()):
            raise UsageError("data mix weights must be >= 0")
        if mix["clips"] > 0 and not self.clips:
            raise UsageError("a clips weight was given without --clips DIR")
        if mix["videos"] > 0 and not self.videos:
            raise UsageError("a videos weight was given without --videos DIR")
        if sum(mix.values()) <= 0:
            raise UsageError("the data mix is empty: give synthetic, clips or videos a positive weight")
        return mix

    def scene(self, crop: int) -> SceneConfig:
        """The synthetic scenes of ``crop`` x ``crop`` training batches."""
        return SceneConfig(height=crop, width=crop, factor=self.factor, subframes_per_interval=self.subframes,
                           exposure=tuple(self.exposure), max_speed=self.max_speed, reference_size=crop,
                           sharp_prob=self.sharp_prob, noise=self.noise)


@dataclass(frozen=True)
class ScheduleConfig:
    steps: int = 20000  # total optimizer steps of the schedule (over all resumed chunks)
    # stop (and count the run as finished) at this step; the schedule still spans ``steps``. None: ``steps``
    max_steps: int | None = None
    lr: float = 4e-4
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    warmup: int = 300
    weight_decay: float = 1e-4
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UsageError("--steps must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError("--max-steps must be >= 1")
        if not (self.lr > 0):
            raise UsageError("--lr must be > 0")
        if self.warmup < 0:
            raise UsageError("--warmup must be >= 0")

    @property
    def last_step(self) -> int:
        """Where the run stops: ``steps``, or ``max_steps`` when that comes first."""
        return self.steps if self.max_steps is None else min(self.steps, self.max_steps)

    def lr_at(self, step: int) -> float:
        """Linear warmup, then cosine from lr down to lr * min_lr_ratio at ``steps``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(1, self.steps - self.warmup)
        p = min(1.0, (step - self.warmup) / span)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


@dataclass(frozen=True)
class TrainConfig:
    run: RunConfig
    model: ModelSetup = field(default_factory=ModelSetup)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.loss.clip_flow_weight > 0 and not self.data.clips:
            raise UsageError("--clip-flow-weight needs --clips DIR")

    def updated(self, **options: Any) -> "TrainConfig":
        """This config with some flat options changed (see :func:`train_config`)."""
        return train_config(options, base=self)

    def record(self) -> dict[str, Any]:
        """Every field as JSON-able nested dicts (the log's and the checkpoint's record of the run)."""
        return _jsonable(dataclasses.asdict(self))


_GROUPS: dict[str, type] = {"run": RunConfig, "model": ModelSetup, "data": DataConfig, "schedule": ScheduleConfig,
                            "loss": LossConfig}
# flat option name -> its group: every field of every group, under its own name
FIELDS: dict[str, str] = {f.name: group for group, cls in _GROUPS.items() for f in dataclasses.fields(cls)}
assert len(FIELDS) == sum(len(dataclasses.fields(c)) for c in _GROUPS.values()), "flat option names must be unique"
# other names for some options: the CLI's flag where it differs from the field, and TrainConfig's old "model"
ALIASES = {"model": "size", "pixel_loss": "pixel"}
_TUPLES = {"exposure", "textures", "clip_strides", "train_only"}


def option_name(key: str) -> str:
    """The field an option name (CLI spelling with dashes or underscores, or an alias) sets."""
    name = key.strip().lstrip("-").replace("-", "_")
    name = ALIASES.get(name, name)
    if name not in FIELDS and name != "mix":
        raise UsageError(f"unknown train option {key!r}")
    return name


def parse_mix(value: str | Mapping[str, float] | None) -> dict[str, float]:
    """``--mix synthetic=0.7,clips=0.3`` (or a table of the same) -> weights per source."""
    if not value:
        return {}
    items = value.items() if isinstance(value, Mapping) else (p.partition("=")[::2] for p in str(value).split(","))
    out: dict[str, float] = {}
    for name, weight in items:
        name = str(name).strip().lower()
        if name not in SOURCES or weight in ("", None):
            raise UsageError(f"--mix {value!r}: expected e.g. synthetic=0.7,clips=0.3 (names: {', '.join(SOURCES)})")
        try:
            out[name] = float(weight)
        except (TypeError, ValueError):
            raise UsageError(f"--mix {value!r}: {weight!r} is not a number") from None
    return out


def train_config(options: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from flat options (``out``, ``size``, ``steps``, ``mix``, ``key_weight``, ...) over
    ``base`` (or the defaults, which need ``out``). ``mix`` sets the three ``mix_*`` weights, a missing
    synthetic weight being 1 as with ``--mix``; ``options`` is a table of inference options that replaces
    the base's; ``model_changes`` a table of model config changes. Unknown names and bad values are
    usage errors."""
    changes: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
    for key, value in options.items():
        name = option_name(key)
        if name == "mix":
            weights = parse_mix(value)
            for source in SOURCES:
                changes["data"][f"mix_{source}"] = weights.get(source, 1.0 if source == "synthetic" else None)
            continue
        if name == "options":
            value = _inference_options(value)
        elif name == "model_changes":
            value = tuple(sorted(dict(value).items())) if isinstance(value, Mapping) else tuple(value)
        elif name in _TUPLES and value is not None:
            value = (value,) if isinstance(value, str) else tuple(value)
        changes[FIELDS[name]][name] = value
    try:
        if base is None:
            parts = {g: cls(**changes[g]) for g, cls in _GROUPS.items()}
        else:
            parts = {g: dataclasses.replace(getattr(base, g), **changes[g]) if changes[g] else getattr(base, g)
                     for g in _GROUPS}
        return TrainConfig(**parts)
    except TypeError as err:  # a missing ``out``
        raise UsageError(f"train options: {err}") from None
    except ValueError as err:  # e.g. LossConfig's pixel check
        raise UsageError(f"train options: {err}") from None


def _inference_options(value: Any) -> InferenceOptions:
    if isinstance(value, InferenceOptions):
        return value
    try:
        return options_from_dict(dict(value or {}))
    except ValueError as err:
        raise UsageError(f"options: {err}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
