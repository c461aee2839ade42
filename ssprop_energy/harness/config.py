"""The profile configuration: a pydantic schema loaded with ``yaml.safe_load``.

Every error is one line naming the file, the field path and what was expected, e.g.
``quick.yaml: methods[1].keep: must be in (0, 1], got 0``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from ..data import DataConfig
from ..errors import UserError
from ..methods import AnyMethodConfig, DenseConfig, method_label
from ..models import MODEL_TASKS, MODELS
from ..tasks import TASKS, AnyTaskConfig, ClassificationConfig, TaskConfig, build_task


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """A builtin model by ``name`` (see ``ssprop_energy.models.MODELS``) or a user ``factory``."""

    name: str | None = None
    factory: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of(self) -> ModelConfig:
        if (self.name is None) == (self.factory is None):
            raise ValueError("give exactly one of 'name' (a builtin model) or 'factory'")
        return self

    @field_validator("name")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in MODELS:
            raise ValueError(f"unknown model, got {value!r} (known: {', '.join(MODELS)})")
        return value

    @property
    def label(self) -> str:
        return self.name or str(self.factory)


class TrainConfig(_Section):
    """The training recipe."""

    epochs: int = Field(5, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.9, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    amp: bool = False
    init_from: Path | None = None
    freeze: list[str] = Field(default_factory=list)


class EnergyConfig(_Section):
    """What the EnergyMeter measures."""

    gpus: Literal["auto"] | list[int] | None = "auto"
    cpu: Literal["auto", "rapl", "codecarbon"] | None = "auto"
    codecarbon: bool = True
    interval_s: float = Field(0.1, gt=0.0)
    country: str = "USA"
    region: str | None = None
    idle_s: float = Field(2.0, ge=0.0)
    phase_calibration: bool = False
    cooldown_s: float = Field(0.0, ge=0.0)
    """Seconds to idle before each run's idle measurement (so between runs) and between the
    estimate's calibration blocks, so a GPU starts each at the same temperature."""


class ComparisonConfig(_Section):
    """Controlled comparison (docs/controlled.md): paired blocks of a non-baseline run's own
    steps against a shadow of the dense baseline, inside its epochs."""

    enabled: bool = False
    block_steps: int = Field(2, ge=1)
    precision: float = Field(0.03, gt=0.0, lt=1.0)
    budget: float = Field(0.03, gt=0.0, le=1.0)
    min_pairs: int = Field(3, ge=2)


TRAIN_BATCH = "train"
"""In ``inference.batch_sizes``: the run's training batch size (``data.batch_size``)."""


def _default_batch_sizes() -> list[int | Literal["train"]]:
    return [1, "train"]


class InferenceConfig(_Section):
    """The inference cost of every finished run's final model (not part of the run id)."""

    enabled: bool = True
    samples: int = Field(1000, ge=1)
    batch_sizes: list[int | Literal["train"]] = Field(
        default_factory=_default_batch_sizes, min_length=1
    )

    @model_validator(mode="before")
    @classmethod
    def _batch_sizes(cls, raw: Any) -> Any:
        sizes = raw.get("batch_sizes") if isinstance(raw, dict) else None
        for i, size in enumerate(sizes if isinstance(sizes, list) else []):
            if size != TRAIN_BATCH and (type(size) is not int or size < 1):
                raise ValueError(
                    f"batch_sizes[{i}]: must be a positive integer or {TRAIN_BATCH!r}, got {size!r}"
                )
        return raw

    def resolve(self, train_batch: int) -> list[int]:
        """The batch sizes to measure, ``train`` replaced by ``train_batch``, each once."""
        sizes = [train_batch if b == TRAIN_BATCH else int(b) for b in self.batch_sizes]
        return list(dict.fromkeys(sizes))


SWEEP_ALIASES = {"batch_size": "data.batch_size"}


NAME_MAX_CHARS = 100
"""The longest sweep name: a folder name well within every file system's limit (255 bytes)."""


def check_sweep_name(value: str) -> str:
    """A sweep's folder under the output folder: never ``.``, ``..``, a hidden folder, a name
    a shell command would read as an option (``-rf``), or longer than ``NAME_MAX_CHARS``."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", value):
        raise ValueError(
            "must be a folder name of letters, digits, '.', '_' and '-' that does not "
            "start with '.' or '-'"
        )
    if len(value) > NAME_MAX_CHARS:
        raise ValueError(f"must be at most {NAME_MAX_CHARS} characters long, got {len(value)}")
    return value


def _dense_only() -> list[AnyMethodConfig]:
    return [DenseConfig()]


class ProfileConfig(_Section):
    """The whole ``model.yaml``."""

    name: str
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    task: AnyTaskConfig = Field(default_factory=ClassificationConfig)
    methods: list[AnyMethodConfig] = Field(default_factory=_dense_only, min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    comparison: ComparisonConfig = Field(default_factory=ComparisonConfig)
    target_accuracy: float | None = Field(None, gt=0.0, le=1.0)
    stop_at_target: bool = False
    save_weights: bool = False
    output: Path = Path("runs")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        return check_sweep_name(value)

    @model_validator(mode="before")
    @classmethod
    def _task_data(cls, raw: Any) -> Any:
        """The ``data:`` section as the task checks it and fills in its defaults."""
        if not isinstance(raw, dict) or not isinstance(raw.get("data", {}), dict):
            return raw
        task = raw.get("task", {})
        name = task.get("name", TaskConfig().name) if isinstance(task, dict) else None
        if name not in TASKS.names():
            return raw
        try:
            data = TASKS.get(name).check_data(dict(raw.get("data", {})))
        except ValueError as exc:
            raise ValueError(f"data.{exc}") from None
        return {**raw, "data": data}

    @model_validator(mode="after")
    def _check(self) -> ProfileConfig:
        trained_under = MODEL_TASKS.get(self.model.name or "", self.task.name)
        if trained_under != self.task.name:
            raise ValueError(
                f"model: {self.model.name!r} is a model for the {trained_under!r} task, not "
                f"{self.task.name!r} (count its FLOPs with count_flops, or train it in your "
                "own loop)"
            )
        metric = build_task(self.task).primary_metric
        if self.target_accuracy is not None and metric != "accuracy":
            raise ValueError(
                f"target_accuracy: the {self.task.name} task has no accuracy (its primary "
                f"metric is {metric})"
            )
        if self.stop_at_target and self.target_accuracy is None:
            raise ValueError("stop_at_target: needs target_accuracy")
        labels = [method_label(m) for m in self.methods]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"methods: two entries share the label {duplicates[0]!r}; set 'label'")
        for i, method in enumerate(self.methods):
            if method.init_from is None:
                continue
            if method.init_from not in labels[:i]:
                earlier = ", ".join(repr(x) for x in labels[:i]) or "none"
                raise ValueError(
                    f"methods[{i}].init_from: no earlier method labelled {method.init_from!r} "
                    f"(earlier labels: {earlier})"
                )
            if self.train.init_from is not None:
                raise ValueError(f"methods[{i}].init_from: give it or train.init_from, not both")
        if "seed" in self.sweep:
            raise ValueError("sweep.seed: list the seeds in 'seeds' instead")
        for key, values in self.sweep.items():
            if not values:
                raise ValueError(f"sweep.{key}: give at least one value")
            target = SWEEP_ALIASES.get(key, f"train.{key}")
            section, field = target.split(".")
            if field not in type(getattr(self, section)).model_fields:
                known = ", ".join([*TrainConfig.model_fields, *SWEEP_ALIASES])
                raise ValueError(f"sweep.{key}: not a train field (one of {known})")
        return self

    @property
    def sweep_dir(self) -> Path:
        return self.output / self.name


def sweep_folder(cfg: ProfileConfig, out: Path | None = None) -> Path:
    """``OUT/NAME``; a name whose folder, resolved, is not inside OUT is a UserError."""
    root = out or cfg.output
    sweep_dir = root / cfg.name
    inside, resolved = root.resolve(), sweep_dir.resolve()
    if resolved == inside or not resolved.is_relative_to(inside):
        raise UserError(
            f"name: {cfg.name!r} leads to {resolved}, outside the output folder {inside}"
        )
    return sweep_dir


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _explain(error: ErrorDetails) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    value = error.get("input")
    if "got" in message or isinstance(value, dict | list) or value is None:
        return message
    return f"{message}, got {value!r}"


def validation_message(path: Path | str, exc: ValidationError) -> str:
    """One line: the file, the first error's field path and what was expected.

    A section-level check names its field first (``"path: ..."``); it joins the location.
    """
    first = exc.errors()[0]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    location, text = _location(first["loc"]), _explain(first)
    field, sep, rest = text.partition(": ")
    if sep and re.fullmatch(r"[a-z_]+(\[\d+\])?(\.[a-z_]+)?", field):
        location = field if location == "(top level)" else f"{location}.{field}"
        text = rest
    return f"{path}: {location}: {text}{more}"


def parse_config(raw: Any, source: str = "config") -> ProfileConfig:
    """Validate an already-parsed mapping."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections at the top level")
    try:
        return ProfileConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(validation_message(source, exc)) from None


def load_config(path: Path | str) -> ProfileConfig:
    """Read and validate a profile YAML file; any problem is a one-line UserError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{path}: malformed YAML{where}: {problem}") from None
    return parse_config(raw, str(path))
