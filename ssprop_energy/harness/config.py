"""The profile configuration: a pydantic schema loaded with ``yaml.safe_load``.

Every error is one line naming the file, the field path and what was expected, e.g.
``quick.yaml: methods[1].keep: must be in (0, 1], got 0``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import UserError
from ..sparse.schedule import BY, MODES
from ..sparse.selection import SELECTIONS
from .models import MODEL_TASKS, MODELS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _fraction(value: float, name: str) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1], got {value}")
    return value


class ModelConfig(_Section):
    """A builtin model by ``name`` (see ``harness.models.MODELS``) or a user ``factory``."""

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
        if value is not None and MODEL_TASKS.get(value, "classify") != "classify":
            raise ValueError(
                f"{value!r} is a {MODEL_TASKS[value]} model; the harness trains classifiers "
                "(count its FLOPs with count_flops, or train it in your own loop)"
            )
        return value

    @property
    def label(self) -> str:
        return self.name or str(self.factory)


class DataConfig(_Section):
    """``digits`` (scikit-learn's bundled digits), ``synthetic``, ``npz`` or a torchvision set."""

    name: str = "digits"
    image_size: int = Field(8, ge=1)
    channels: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    val_split: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0
    path: Path | None = None
    samples: int = Field(1024, ge=2)
    classes: int = Field(10, ge=2)
    download: bool = False

    @model_validator(mode="after")
    def _npz_file(self) -> DataConfig:
        if self.name == "npz":
            if self.path is None:
                raise ValueError("path: the npz data set needs a .npz file with x and y")
            if not self.path.is_file():
                raise ValueError(f"path: no such file: {self.path}")
        return self


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


class _Method(_Section):
    """Fields every method takes.

    ``init_from``: the label of an earlier method entry; each run of this method starts from
    the final weights of that method's run at the same seed and sweep point (pretraining then
    fine-tuning in one sweep). ``freeze``: module-name patterns kept fixed in this method's
    runs (besides ``train.freeze``).
    """

    label: str | None = None
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    init_from: str | None = None
    freeze: list[str] = Field(default_factory=list)


class DenseMethod(_Method):
    """Ordinary training: the baseline."""

    name: Literal["dense"] = "dense"


class SSPropMethod(_Method):
    """ssProp: sparse backward in every convolution under a drop schedule."""

    name: Literal["ssprop"] = "ssprop"
    keep: float = 0.2
    min_keep: float | None = None
    mode: str = "constant"
    interleave: bool = False
    warmup: int = Field(0, ge=0)
    by: str = "epoch"
    period: int = Field(10, ge=1)
    selection: str = "topk"
    skip_layers: list[str] = Field(default_factory=list)
    layers: list[Literal["Conv1d", "Conv2d", "Conv3d", "Linear"]] = Field(
        default_factory=lambda: ["Conv2d"]
    )
    sparse_input_grad: bool = True

    @field_validator("keep")
    @classmethod
    def _keep(cls, value: float) -> float:
        return _fraction(value, "keep")

    @field_validator("min_keep")
    @classmethod
    def _min_keep(cls, value: float | None) -> float | None:
        return None if value is None else _fraction(value, "min_keep")

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in MODES:
            raise ValueError(f"must be one of {', '.join(MODES)}, got {value!r}")
        return value

    @field_validator("by")
    @classmethod
    def _by(cls, value: str) -> str:
        if value not in BY:
            raise ValueError(f"must be one of {', '.join(BY)}, got {value!r}")
        return value

    @field_validator("selection")
    @classmethod
    def _selection(cls, value: str) -> str:
        if value not in SELECTIONS:
            raise ValueError(f"must be one of {', '.join(SELECTIONS)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _schedule(self) -> SSPropMethod:
        if self.mode != "constant" and self.min_keep is None:
            raise ValueError(f"min_keep: required for mode {self.mode!r}")
        if self.min_keep is not None and self.min_keep > self.keep:
            raise ValueError(f"min_keep: {self.min_keep} must not exceed keep ({self.keep})")
        return self


Method = Annotated[DenseMethod | SSPropMethod, Field(discriminator="name")]


class EnergyConfig(_Section):
    """What the EnergyMeter measures."""

    gpus: Literal["auto"] | list[int] | None = "auto"
    cpu: Literal["auto", "rapl", "codecarbon"] | None = "auto"
    codecarbon: bool = True
    interval_s: float = Field(0.1, gt=0.0)
    country: str = "USA"
    region: str | None = None
    idle_s: float = Field(2.0, ge=0.0)


SWEEP_ALIASES = {"batch_size": "data.batch_size"}


class ProfileConfig(_Section):
    """The whole ``model.yaml``."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    methods: list[Method] = Field(default_factory=lambda: [DenseMethod()], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    target_accuracy: float | None = Field(None, gt=0.0, le=1.0)
    stop_at_target: bool = False
    save_weights: bool = False
    output: Path = Path("runs")

    @model_validator(mode="after")
    def _check(self) -> ProfileConfig:
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


def method_label(method: DenseMethod | SSPropMethod) -> str:
    """A readable, unique-per-entry label: ``dense``, ``ssprop keep=0.2 constant interleave``."""
    if method.label:
        return method.label
    if isinstance(method, DenseMethod):
        parts = ["dense"]
    else:
        parts = ["ssprop", f"keep={method.keep:g}"]
        if method.mode != "constant":
            parts.append(f"{method.mode} min={method.min_keep:g} by {method.by}")
        if method.interleave:
            parts.append("interleave")
        if method.warmup:
            parts.append(f"warmup={method.warmup}")
        if method.selection != "topk":
            parts.append(method.selection)
        if not method.sparse_input_grad:
            parts.append("dense-input-grad")
    if method.dropout:
        parts.append(f"dropout={method.dropout:g}")
    if method.init_from:
        parts.append(f"from {method.init_from}")
    return " ".join(parts)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("dense", "ssprop") or not out.endswith("]"):
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _explain(error: dict[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "union_tag_invalid":
        return "unknown method (expected 'dense' or 'ssprop')"
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
