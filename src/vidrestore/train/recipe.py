"""Training recipes: a chain of training stages, written down as data (TOML) instead of scripts.

A recipe file::

    name = "example"                      # optional; the file's stem by default
    description = "..."                   # optional

    [defaults]                            # train options every training stage starts from
    size = "small"
    textures = ["${DATA}/reds_000", "${DATA}/clips"]

    [[stages]]                            # trained into OUT/first/
    name = "first"
    steps = 4500
    options = { coarse_levels = 0 }       # the inference options this stage trains with

    [[stages]]
    name = "second"
    init = "stage:first"                  # starts from the weights the stage "first" exported
    steps = 2600

    [[stages]]                            # tensors of named top-level parts taken from another file
    name = "grafted"
    kind = "graft"
    base = "stage:second"
    donor = "stage:first"
    parts = ["key_branch"]

    [options]                             # the inference options recorded in OUT/final.safetensors
    static_gate = 0.05

Train options have the names of ``vidrestore train``'s flags without their dashes (``max_speed``,
``key_weight``, ``mix = "synthetic=0.6,clips=0.4"`` or a table), or of the fields of
:class:`~vidrestore.train.config.TrainConfig`; ``options`` (inference options) and ``model_changes``
(changes to the size's model config, i.e. to which tensors exist) are tables, merged key by key over the
defaults' tables. Every ``options`` table, the stages' and the final one, is relative to
:class:`~vidrestore.model.network.InferenceOptions`' defaults. ``${DATA}`` in a string is the data folder.

Stage ``NAME`` runs into ``OUT/NAME/`` with ``resume``: a finished stage is skipped, an interrupted one
continues from its checkpoint, and ``OUT/NAME/stage.json`` records what it was made from, so that a stage
whose input has changed since is refused instead of silently mixed. When every stage has finished, the last
one's weights are exported with the recipe's ``options`` to ``OUT/final.safetensors``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from vidrestore.errors import UsageError, WeightsError
from vidrestore.model.network import options_from_dict, options_to_json, with_options
from vidrestore.train.config import TrainConfig, option_name, train_config
from vidrestore.train.loop import build_training_model, select_trainable, train
from vidrestore.weights import RESERVED_KEYS, load_model, locate_weights, read_metadata, save_weights, sha256_file

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib

STAGE_REF = "stage:"
DATA_VAR = "${DATA}"
DATA_ENV = "VIDRESTORE_DATA"
STAGE_FILE = "stage.json"
FINAL_FILE = "final.safetensors"
KINDS = ("train", "graft")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOP_KEYS = {"name", "description", "defaults", "stages", "options"}
_GRAFT_KEYS = {"name", "kind", "base", "donor", "parts"}
# train options a recipe's stages may not set: the runner decides them
_RUNNER_KEYS = {"out", "resume", "export"}
# train options that are tables merged key by key over the defaults' table
_TABLES = ("options", "model_changes")


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # "train" or "graft"
    options: Mapping[str, Any] = field(default_factory=dict)  # train: flat train options, ${DATA} expanded
    base: str | None = None  # graft: the file most tensors come from
    donor: str | None = None  # graft: the file ``parts`` come from
    parts: tuple[str, ...] = ()

    @property
    def inputs(self) -> dict[str, str]:
        """The weights this stage starts from, by role (init, base, donor): names, paths or stage refs."""
        if self.kind == "graft":
            return {"base": self.base, "donor": self.donor}
        init = self.options.get("init")
        return {"init": init} if init else {}


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    stages: tuple[Stage, ...]
    options: Mapping[str, Any]  # final inference options (over InferenceOptions' defaults)
    description: str = ""

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise UsageError(f"--stage {name!r}: the recipe {self.path} has stages {', '.join(s.name for s in self.stages)}")


def default_data_dir(recipe_path: Path) -> Path:
    """``../shared/data`` beside the repository the recipe lives in (the folder above it that holds
    ``pyproject.toml``; the current directory if there is none)."""
    for folder in Path(recipe_path).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder.parent / "shared" / "data"
    return Path.cwd().parent / "shared" / "data"


def data_dir(recipe_path: Path, data: str | os.PathLike[str] | None = None) -> Path:
    """The folder ``${DATA}`` stands for: ``data``, else ``$VIDRESTORE_DATA``, else :func:`default_data_dir`."""
    chosen = data or os.environ.get(DATA_ENV)
    return Path(chosen) if chosen else default_data_dir(recipe_path)


def _expand(value: Any, data: str) -> Any:
    if isinstance(value, str):
        return value.replace(DATA_VAR, data)
    if isinstance(value, list):
        return [_expand(v, data) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, data) for k, v in value.items()}
    return value


def _merge(defaults: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """``own`` over ``defaults``, the tables in ``_TABLES`` merged key by key; keys in their field's spelling."""
    out: dict[str, Any] = {}
    for options in (defaults, own):
        for key, value in options.items():
            name = option_name(key)
            if name in _TABLES:
                if not isinstance(value, Mapping):
                    raise UsageError(f"{name} must be a table, e.g. {name} = {{ ... }}")
                out[name] = {**out.get(name, {}), **value}
            else:
                out[name] = value
    return out


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML (``2``, ``4e-4``, ``true``, ``[0.75, 1.0]``, ``"tiny"``), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_items(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``--set NAME=VALUE`` items -> (NAME as given, parsed VALUE) pairs."""
    out: list[tuple[str, Any]] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected NAME=VALUE, e.g. --set steps=2")
        out.append((key, parse_value(value.strip())))
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` items -> flat train options."""
    out: dict[str, Any] = {}
    for key, value in set_items(items):
        name = option_name(key)
        if name in _RUNNER_KEYS:
            raise UsageError(f"--set {key}: the recipe runner sets {name} itself")
        out[name] = value
    return out


def load_recipe(path: str | os.PathLike[str], data: str | os.PathLike[str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Recipe:
    """Read and check a recipe: its stages' names, kinds, keys and stage references. ``data`` is what
    ``${DATA}`` stands for (see :func:`data_dir`); ``overrides`` are train options that replace every
    training stage's."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"--recipe {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"--recipe {path}: not valid TOML ({err})") from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise UsageError(f"{path}: unknown top-level key {unknown[0]!r} (expected {', '.join(sorted(_TOP_KEYS))})")
    data_text = str(data_dir(path, data))
    doc = _expand(doc, data_text)
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise UsageError(f"{path}: [defaults] must be a table")
    overrides = dict(overrides or {})
    stages: list[Stage] = []
    for i, raw in enumerate(doc.get("stages", [])):
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: stages must be tables ([[stages]])")
        name = str(raw.get("name", ""))
        where = f"{path}: stage {name or i + 1}"
        if not _NAME.match(name):
            raise UsageError(f"{where}: needs a name of letters, digits, '.', '_' or '-' (it names its folder)")
        if any(s.name == name for s in stages):
            raise UsageError(f"{where}: two stages have this name")
        kind = raw.get("kind", "train")
        if kind not in KINDS:
            raise UsageError(f"{where}: kind {kind!r}: expected one of {', '.join(KINDS)}")
        if kind == "graft":
            extra = sorted(set(raw) - _GRAFT_KEYS)
            if extra or not raw.get("base") or not raw.get("donor") or not raw.get("parts"):
                raise UsageError(f"{where}: a graft stage has base, donor and parts (and nothing else{': ' + extra[0] if extra else ''})")
            parts = raw["parts"]
            stage = Stage(name, kind, base=str(raw["base"]), donor=str(raw["donor"]),
                          parts=(parts,) if isinstance(parts, str) else tuple(map(str, parts)))
        else:
            own = {k: v for k, v in raw.items() if k not in ("name", "kind")}
            try:
                options = _merge(_merge(defaults, own), overrides)
            except UsageError as err:
                raise UsageError(f"{where}: {err}") from None
            set_by_runner = sorted(_RUNNER_KEYS & set(options))
            if set_by_runner:
                raise UsageError(f"{where}: {set_by_runner[0]} is set by the recipe runner, not the recipe")
            stage = Stage(name, kind, options=options)
        for role, ref in stage.inputs.items():
            if ref.startswith(STAGE_REF) and not any(s.name == ref[len(STAGE_REF):] for s in stages):
                raise UsageError(f"{where}: {role} = {ref!r} names no earlier stage")
        stages.append(stage)
    if not stages:
        raise UsageError(f"{path}: no [[stages]]")
    final = doc.get("options", {})
    try:
        options_from_dict(dict(final))
    except (TypeError, ValueError) as err:
        raise UsageError(f"{path}: [options]: {err}") from None
    return Recipe(str(doc.get("name") or path.stem), path, tuple(stages), dict(final), str(doc.get("description", "")))


# ---------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class StageResult:
    name: str
    state: str  # "done" (finished earlier, skipped), "finished" (by this run), "paused" (budget spent)
    weights: str
    step: int | None = None


@dataclass(frozen=True)
class RecipeResult:
    stages: tuple[StageResult, ...]
    export: str | None  # OUT/final.safetensors once every stage has finished
    sha256: str | None = None

    @property
    def finished(self) -> bool:
        return self.export is not None


class Runner:
    """Runs a recipe's stages into ``out``. ``device``/``precision`` replace every stage's; ``minutes`` is
    the time budget of this invocation over all stages."""

    def __init__(self, recipe: Recipe, out: str | os.PathLike[str], *, device: str | None = None,
                 precision: str | None = None, minutes: float | None = None,
                 echo: Callable[[str], None] = print):
        self.recipe, self.out, self.echo = recipe, Path(out), echo
        self.device, self.precision = device, precision
        self.deadline = None if minutes is None else time.monotonic() + minutes * 60.0
        self.configs = {s.name: self._config(s) for s in recipe.stages if s.kind == "train"}

    # -- where things are

    def folder(self, stage: Stage) -> Path:
        return self.out / stage.name

    def weights_of(self, stage: Stage) -> Path:
        return self.folder(stage) / FINAL_FILE

    def resolve(self, ref: str) -> str:
        """A stage reference as the path of that stage's weights; anything else as it is."""
        if ref.startswith(STAGE_REF):
            return str(self.weights_of(self.recipe.stage(ref[len(STAGE_REF):])))
        return ref

    def _config(self, stage: Stage) -> TrainConfig:
        options = dict(stage.options)
        if options.get("init"):
            options["init"] = self.resolve(options["init"])
        for name, value in (("device", self.device), ("precision", self.precision)):
            if value is not None:
                options[name] = value
        options.update(out=str(self.folder(stage)), resume=True)
        try:
            cfg = train_config(options)
            # the network and the parts it trains, checked before any stage runs
            select_trainable(build_training_model(cfg, torch.device("cpu")), cfg.model.train_only)
        except UsageError as err:
            raise UsageError(f"{self.recipe.path}: stage {stage.name}: {err}") from None
        for name in ("textures", "clips", "videos"):
            value = getattr(cfg.data, name)
            for p in (value if isinstance(value, tuple) else (value,) if value else ()):
                if not Path(p).exists():
                    raise UsageError(f"stage {stage.name}: {name} {p} does not exist (${{DATA}} is set by --data "
                                     f"or ${DATA_ENV})")
        return cfg

    # -- what is done

    def _record(self, stage: Stage) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder(stage) / STAGE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _inputs(self, stage: Stage) -> dict[str, dict[str, str | None]]:
        """Each input's spec and the sha256 of its file (None where it is not there yet)."""
        out: dict[str, dict[str, str | None]] = {}
        for role, ref in stage.inputs.items():
            spec = self.resolve(ref)
            try:
                sha = sha256_file(locate_weights(spec, offline=True).path)
            except (WeightsError, OSError):  # not made yet, or a name this machine cannot resolve: loading will say
                sha = None
            out[role] = {"spec": ref, "sha256": sha}
        return out

    def _write_record(self, stage: Stage, inputs: dict, **state: Any) -> None:
        folder = self.folder(stage)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"stage": stage.name, "kind": stage.kind, "inputs": inputs, **state}
        (folder / STAGE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")

    def is_done(self, stage: Stage) -> bool:
        """Whether ``stage`` has finished, from the inputs it has now, into the weights it recorded."""
        record = self._record(stage)
        weights = self.weights_of(stage)
        if not record or not record.get("finished") or not weights.is_file():
            return False
        if stage.kind == "train" and int(record.get("step", 0)) < self.configs[stage.name].schedule.last_step:
            return False
        return record.get("sha256") == sha256_file(weights) and record.get("inputs") == self._inputs(stage)

    def _check_inputs_ready(self, stage: Stage) -> None:
        for role, ref in stage.inputs.items():
            if ref.startswith(STAGE_REF):
                before = self.recipe.stage(ref[len(STAGE_REF):])
                if not self.is_done(before):
                    raise UsageError(f"stage {stage.name}: its {role}, stage {before.name}, has not finished: "
                                     f"run it first (--stage {before.name}, or the whole recipe)")

    # -- running

    def run(self, only: str | None = None) -> RecipeResult:
        """Every stage in order (or only the stage ``only``), skipping finished ones; stops at a stage that
        pauses on the time budget. Exports the result once every stage has finished."""
        results: list[StageResult] = []
        todo = [self.recipe.stage(only)] if only else list(self.recipe.stages)
        for stage in todo:
            if self.is_done(stage):
                record = self._record(stage) or {}
                self.echo(f"stage {stage.name}: done earlier (step {record.get('step', '-')}), skipped")
                results.append(StageResult(stage.name, "done", str(self.weights_of(stage)), record.get("step")))
                continue
            self._check_inputs_ready(stage)
            if any(r.state == "finished" for r in results) and self._minutes_left() == 0:
                self.echo(f"time budget spent before stage {stage.name}: run the recipe again to continue")
                return RecipeResult(tuple(results), None)
            result = self._train(stage) if stage.kind == "train" else self._graft(stage)
            results.append(result)
            if result.state == "paused":
                self.echo(f"stage {stage.name} paused at step {result.step}: run the recipe again to continue")
                return RecipeResult(tuple(results), None)
        if all(self.is_done(s) for s in self.recipe.stages):
            path, sha = self.export()
            return RecipeResult(tuple(results), str(path), sha)
        return RecipeResult(tuple(results), None)

    def _minutes_left(self) -> float | None:
        """What is left of this invocation's budget (None: no budget; 0: spent)."""
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - time.monotonic()) / 60.0)

    def _train(self, stage: Stage) -> StageResult:
        cfg = self.configs[stage.name]
        inputs = self._inputs(stage)
        record = self._record(stage)
        if record is not None and record.get("inputs") != inputs:
            raise UsageError(f"stage {stage.name} was started from other weights than its {', '.join(inputs)} now "
                             f"holds ({record['inputs']} then, {inputs} now): remove {self.folder(stage)} to train it "
                             "again from them")
        self._write_record(stage, inputs, finished=False)
        minutes = self._minutes_left()
        if minutes is not None:  # a stage this invocation reaches gets at least a moment: it checkpoints and pauses
            cfg = cfg.updated(minutes=max(minutes, 1e-3))
        self.echo(f"stage {stage.name}: training into {self.folder(stage)}")
        result = train(cfg, echo=self.echo)
        sha = sha256_file(result.export_path)
        self._write_record(stage, inputs, finished=result.finished, step=result.step, sha256=sha)
        if result.finished:
            self.echo(f"stage {stage.name} finished: step {result.step}, weights {result.export_path}")
        return StageResult(stage.name, "finished" if result.finished else "paused", result.export_path, result.step)

    def _graft(self, stage: Stage) -> StageResult:
        inputs = self._inputs(stage)
        dst = self.weights_of(stage)
        sha = graft(self.resolve(stage.base), self.resolve(stage.donor), stage.parts, dst,
                    donor_label=stage.donor)
        self._write_record(stage, inputs, finished=True, sha256=sha)
        self.echo(f"stage {stage.name} finished: {', '.join(stage.parts)} from {stage.donor} onto {stage.base}, "
                  f"weights {dst}")
        return StageResult(stage.name, "finished", str(dst))

    def export(self) -> tuple[Path, str]:
        """The last stage's tensors under the recipe's inference options, with the chain in the metadata."""
        last = self.weights_of(self.recipe.stages[-1])
        options = options_from_dict(dict(self.recipe.options))
        model = with_options(load_model(str(last), device=torch.device("cpu")), options)
        meta = {k: v for k, v in read_metadata(last).items() if k not in RESERVED_KEYS}
        chain = []
        for stage in self.recipe.stages:
            record = self._record(stage) or {}
            chain.append({"stage": stage.name, "kind": stage.kind, "step": record.get("step"),
                          **{role: ref for role, ref in stage.inputs.items()},
                          **({"parts": list(stage.parts)} if stage.kind == "graft" else {})})
        meta.update({"recipe.name": self.recipe.name, "recipe.stages": json.dumps(chain, sort_keys=True),
                     "recipe.options": json.dumps(dict(self.recipe.options), sort_keys=True)})
        path = self.out / FINAL_FILE
        sha = save_weights(model, path, meta)
        self.echo(f"recipe {self.recipe.name} finished: {path} (sha256 {sha[:12]}), options {options_to_json(options)}")
        return path, sha


def graft(base: str, donor: str, parts: Sequence[str], dst: str | os.PathLike[str], *,
          donor_label: str | None = None) -> str:
    """Write ``dst``: the tensors of ``base`` (weights name or path), except the named top-level parts
    (e.g. ``key_branch``), which come from ``donor``. Both must be the same model. The metadata is
    ``base``'s, with a ``graft`` entry naming the donor and the parts. Returns the file's sha256."""
    cpu = torch.device("cpu")
    model = load_model(base, device=cpu)
    other = load_model(donor, device=cpu)
    if other.config != model.config:
        raise UsageError(f"graft: {donor} is a {other.config.name!r} model with another configuration than {base}")
    children = {name: m for name, m in model.named_children() if any(True for _ in m.parameters())}
    for part in parts:
        if part not in children:
            raise UsageError(f"graft: no part {part!r}; parts: {', '.join(sorted(children))}")
        children[part].load_state_dict(getattr(other, part).state_dict())
    meta = {k: v for k, v in read_metadata(locate_weights(base).path).items() if k not in RESERVED_KEYS}
    meta["graft"] = json.dumps({"donor": donor_label or Path(donor).name, "parts": list(parts)}, sort_keys=True)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    return save_weights(model, dst, meta)


def plan_lines(runner: Runner) -> list[str]:
    """What a run of the recipe would do, one line per stage (``--dry-run``)."""
    lines = [f"recipe {runner.recipe.name} ({runner.recipe.path}) into {runner.out}"]
    for stage in runner.recipe.stages:
        state = "done" if runner.is_done(stage) else "to run"
        if stage.kind == "graft":
            lines.append(f"  {stage.name}: graft {', '.join(stage.parts)} from {stage.donor} onto {stage.base} [{state}]")
            continue
        cfg = runner.configs[stage.name]
        sched = cfg.schedule
        steps = f"{sched.last_step} of {sched.steps}" if sched.last_step != sched.steps else f"{sched.steps}"
        changed = dict(stage.options.get("options", {}))
        lines.append(f"  {stage.name}: from {stage.options.get('init') or 'scratch'}, {steps} steps, crop "
                     f"{cfg.data.crop}, lr {sched.lr:g}, options {changed or 'default'} [{state}]")
    lines.append(f"  export: {runner.out / FINAL_FILE} with options {dict(runner.recipe.options) or 'default'}")
    return lines


__all__ = ["Recipe", "RecipeResult", "Runner", "Stage", "StageResult", "graft", "load_recipe", "parse_overrides",
           "plan_lines"]
