"""The ``Task`` interface: the data, the loss of a batch, and the evaluation of a model.

A task is one module with a config class (its ``task:`` fields in the YAML) and a ``Task``
subclass, registered by name with :func:`register_task` (or through the entry point group
``ssprop_energy.tasks``). ``evaluate`` returns metrics with one ``primary_metric`` (and whether
higher is better), which reports use to rank and to judge a target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, SerializeAsAny
from torch import nn

from ..data import DataConfig, Dataset
from ..plugins import Registry
from ..profilers import EnergyMeter

Batch = tuple[torch.Tensor, torch.Tensor]


class TaskConfig(BaseModel):
    """Fields every task takes: its ``name``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "classification"


@dataclass(frozen=True)
class EpochEnd:
    """What :meth:`Task.end_epoch` gets: the epoch (from 0) and the planned epochs, the run's
    folder, its running meter, device and data."""

    epoch: int
    epochs: int
    run_dir: Path
    meter: EnergyMeter
    device: torch.device
    data: Dataset


class Task:
    """What is learnt. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    config_class: ClassVar[type[TaskConfig]]
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool]

    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    @classmethod
    def check_data(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The ``data:`` section as the YAML gives it, with this task's defaults filled in;
        raises ValueError("field: why") for an option the task has no use for."""
        return data

    def build_data(self, config: DataConfig) -> Dataset:
        """The task's data set."""
        raise NotImplementedError

    def model_defaults(self, data: Dataset) -> dict[str, Any]:
        """Keyword arguments a model factory gets when it accepts them and the YAML is silent."""
        return {}

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of ``batch`` and per-batch sums of training metrics (the epoch
        row holds each sum divided by the samples seen)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        """Validation metrics (under ``torch.no_grad``), including ``primary_metric``."""
        raise NotImplementedError

    def end_epoch(self, model: nn.Module, end: EpochEnd) -> dict[str, Any]:
        """Columns added to the epoch's row after it is trained and evaluated, outside its
        phases and time (the model in eval mode, under ``torch.no_grad``, the global RNG
        state restored afterwards). It may meter windows on ``end.meter`` and write files
        into ``end.run_dir`` with the store's atomic writers."""
        return {}


TASKS: Registry[type[Task]] = Registry("task", "ssprop_energy.tasks")
register_task = TASKS.register


def _config(raw: Any) -> Any:
    """The ``task:`` section, validated by the config class of the task it names."""
    if isinstance(raw, TaskConfig) or not isinstance(raw, dict):
        return raw
    return TASKS.get(str(raw.get("name", TaskConfig().name))).config_class.model_validate(raw)


AnyTaskConfig = Annotated[SerializeAsAny[TaskConfig], BeforeValidator(_config)]
"""A config field holding any registered task's config."""


def build_task(config: TaskConfig) -> Task:
    return TASKS.get(config.name)(config)
