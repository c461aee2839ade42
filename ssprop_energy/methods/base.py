"""The ``Method`` interface: what a training method does to a model and its training steps.

A method is one module with a config class (its YAML fields) and a ``Method`` subclass,
registered by name with :func:`register_method` (or through the entry point group
``ssprop_energy.methods`` from another package). The trainer calls, in order:

    model = method.prepare(model)                 # once, before the optimizer is built
    new = method.start_epoch(model, epoch)        # every epoch; a model: train it instead
    keep = method.start_step(model, epoch, step)  # every training step: the keep in force
    loss = task loss + method.extra_loss(model)   # optional extra term (None: none)
    model = method.finalize(model)                # once, after the last epoch
    method.tables()                               # files the method adds to the run folder
    method.notes()                                # lines for the run's notes (meta.json)

A method that changes the model during training (pruning) returns the changed model from
``start_epoch``; the trainer then builds a fresh optimizer for it. ``state_dict`` goes into
every checkpoint, and on resume ``load_state_dict`` rebuilds the model as it was then.

Its FLOP effect reaches the counter through the model itself: the analytic counter counts
the prepared model at the keep ``start_step`` returns, with the formulas of the FLOP
registry (ssProp layers count their sparse backward there). ``scheduler`` gives the keep of
every planned step, so a run's FLOPs can be counted before training.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import pandas as pd
import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SerializeAsAny
from torch import nn

from ..plugins import Registry
from ..sparse import DropScheduler


class MethodConfig(BaseModel):
    """Fields every method takes.

    ``init_from``: the label of an earlier method entry; each run of this method starts from
    the final weights of that method's run at the same seed and sweep point (pretraining then
    fine-tuning in one sweep). ``freeze``: module-name patterns kept fixed in this method's
    runs (besides ``train.freeze``). ``dropout``: passed to models that take it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str | None = None
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    init_from: str | None = None
    freeze: list[str] = Field(default_factory=list)

    def label_parts(self) -> list[str]:
        """The words of the automatic label that this method's own fields contribute."""
        return [self.name]


def method_label(config: MethodConfig) -> str:
    """A readable, unique-per-entry label: ``dense``, ``ssprop keep=0.2 interleave``."""
    if config.label:
        return config.label
    parts = config.label_parts()
    if config.dropout:
        parts.append(f"dropout={config.dropout:g}")
    if config.init_from:
        parts.append(f"from {config.init_from}")
    return " ".join(parts)


class Method:
    """A training method over ``epochs`` epochs. Subclasses set ``name`` and ``config_class``
    and override the hooks they need; the defaults train the model as it is (dense)."""

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]

    def __init__(self, config: MethodConfig, epochs: int) -> None:
        self.config = config
        self.epochs = epochs
        self.scheduler = DropScheduler("constant", 1.0, epochs=epochs)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Change the model before training (e.g. swap layers); returns the model to train."""
        return model

    def start_epoch(self, model: nn.Module, epoch: int) -> nn.Module | None:
        """Called before each epoch; returns a changed model to train from now on, or None."""
        return None

    def start_step(self, model: nn.Module, epoch: int, step: int) -> float:
        """Apply the step's settings; returns the keep in force (1.0: dense backward)."""
        return self.scheduler.apply(model, epoch, step)

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """A term added to the task's loss (e.g. a regulariser); None: nothing."""
        return None

    def finalize(self, model: nn.Module) -> nn.Module:
        """After the last epoch; may return a different (e.g. pruned) model to store."""
        return model

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the method (beside the model's weights)."""
        return {}

    def load_state_dict(self, model: nn.Module, state: dict[str, Any]) -> nn.Module | None:
        """Restore from a checkpoint's ``state``; returns the model rebuilt to the shape it
        had then, or None when it is unchanged since ``prepare``."""
        return None

    def tables(self) -> dict[str, pd.DataFrame]:
        """Tables to store in the run folder once training ended, by file name."""
        return {}

    def notes(self) -> list[str]:
        """Lines for the run's ``method_notes`` once training ended: what the run should know
        about how the method went (e.g. gates pruned before they reached their target)."""
        return []

    def mean_keep_planned(self, steps_per_epoch: int) -> float:
        """The mean keep over the planned run."""
        return self.scheduler.mean_keep(steps_per_epoch)


METHODS: Registry[type[Method]] = Registry("method", "ssprop_energy.methods")
register_method = METHODS.register


def _config(raw: Any) -> Any:
    """A method entry of the YAML, validated by the config class of the method it names."""
    if isinstance(raw, MethodConfig) or not isinstance(raw, dict):
        return raw
    name = raw.get("name")
    if name is None:
        raise ValueError(f"name: required (one of {', '.join(METHODS.names())})")
    return METHODS.get(str(name)).config_class.model_validate(raw)


AnyMethodConfig = Annotated[SerializeAsAny[MethodConfig], BeforeValidator(_config)]
"""A config field holding any registered method's config."""


def build_method(config: MethodConfig, epochs: int) -> Method:
    """The method named by ``config``, for a run of ``epochs`` epochs."""
    return METHODS.get(config.name)(config, epochs)
