"""Expand a config into runs (methods x seeds x sweep grid) with stable ids."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..data import DataConfig
from ..errors import UserError
from ..methods import MethodConfig, method_label
from ..tasks import TaskConfig
from .config import (
    SWEEP_ALIASES,
    ComparisonConfig,
    EnergyConfig,
    InferenceConfig,
    ModelConfig,
    ProfileConfig,
    TrainConfig,
    validation_message,
)


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; ``run_id`` hashes all of it but the output folder, the
    inference measurement, the phase calibration and the controlled comparison (which do
    not change training)."""

    sweep: str
    method: MethodConfig
    task: TaskConfig
    seed: int
    setup: dict[str, Any]
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    energy: EnergyConfig
    target_accuracy: float | None
    stop_at_target: bool
    save_weights: bool
    init_run: str | None = None  # the run whose final weights this one starts from
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    comparison: ComparisonConfig = field(default_factory=ComparisonConfig)
    baseline: MethodConfig | None = None
    """The sweep's baseline method (its first ``dense`` entry), which a controlled
    comparison's shadow trains as; None: plain ``dense``."""

    @property
    def label(self) -> str:
        return method_label(self.method)

    def resolved(self) -> dict[str, Any]:
        """The resolved run configuration (JSON types), as stored in meta.json."""
        model = self.model.model_dump(mode="json")
        model["name"] = self.model.label
        init = {"init_run": self.init_run} if self.init_run else {}
        return {
            **init,
            "task": self.task.model_dump(mode="json"),
            "model": model,
            "data": self.data.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json"),
            "method": {**self.method.model_dump(mode="json"), "label": self.label},
            "seed": self.seed,
            "energy": self.energy.model_dump(
                mode="json", exclude={"phase_calibration", "cooldown_s"}
            ),
            "target_accuracy": self.target_accuracy,
            "stop_at_target": self.stop_at_target,
            "save_weights": self.save_weights,
        }

    @property
    def run_id(self) -> str:
        text = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _spread(n: int) -> list[int]:
    """0..n-1 in bit-reversed order, so any prefix covers the range evenly."""
    bits = max(1, (n - 1).bit_length())
    keyed = sorted(range(n), key=lambda i: int(f"{i:0{bits}b}"[::-1], 2))
    return keyed


def _apply_setup(cfg: ProfileConfig, setup: dict[str, Any], source: str) -> tuple[Any, Any]:
    train = cfg.train.model_dump()
    data = cfg.data.model_dump(exclude_unset=True)  # keeps which fields the config gave
    for key, value in setup.items():
        section, field = SWEEP_ALIASES.get(key, f"train.{key}").split(".")
        (data if section == "data" else train)[field] = value
    try:
        return DataConfig.model_validate(data), TrainConfig.model_validate(train)
    except ValidationError as exc:
        raise UserError(validation_message(source, exc).replace(": ", ": sweep.", 1)) from None


def plan_runs(cfg: ProfileConfig, source: str = "config") -> list[RunSpec]:
    """All runs of the config, ordered so that an interrupted sweep covers the grid evenly.

    Order: seeds (outermost), then grid points in a spread order, then methods (in config
    order, so a method's ``init_from`` source runs before it), so the dense baseline and its
    sparse twins at one point are adjacent.
    """
    keys = sorted(cfg.sweep)
    grid = [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(cfg.sweep[k] for k in keys))
    ]
    resolved = [_apply_setup(cfg, setup, source) for setup in grid]
    sources = {m.init_from for m in cfg.methods if m.init_from}
    baseline = next((m for m in cfg.methods if m.name == "dense"), None)
    runs = []
    for seed in cfg.seeds:
        for i in _spread(len(grid)):
            data, train = resolved[i]
            by_label: dict[str, RunSpec] = {}
            for method in cfg.methods:
                label = method_label(method)
                spec = RunSpec(
                    sweep=cfg.name,
                    method=method,
                    task=cfg.task,
                    seed=seed,
                    setup=grid[i],
                    model=cfg.model,
                    data=data,
                    train=train.model_copy(update={"seed": seed}),
                    energy=cfg.energy,
                    target_accuracy=cfg.target_accuracy,
                    stop_at_target=cfg.stop_at_target,
                    save_weights=cfg.save_weights or label in sources,
                    init_run=by_label[method.init_from].run_id if method.init_from else None,
                    inference=cfg.inference,
                    comparison=cfg.comparison,
                    baseline=baseline,
                )
                by_label[label] = spec
                runs.append(spec)
    return runs
