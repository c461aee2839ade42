"""``gated`` and ``gated+ssprop``: training-time pruning with binary gates and a polarizing
loss (Zhi et al., arXiv 2302.10798), alone or with ssProp's sparse backward on the
convolutions that remain; see docs/pruning.md."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator
from torch import nn

from ..pruning import (
    Masks,
    add_gates,
    check_target,
    consensus,
    gate_states,
    gate_warnings,
    polarization_loss,
    warn_gates,
)
from ..pruning import prune_with as prune_by
from ..store import GATES
from .base import Method, MethodConfig, register_method
from .ssprop import SSProp, SSPropConfig


class GatedConfig(MethodConfig):
    """``target_keep`` of the gated channels (or blocks), the regularizer ``weight``, the
    gate ``level``, ``skip`` patterns and ``prune_at_epoch``: after how many epochs the
    closed parts are removed (None: after the last epoch)."""

    name: Literal["gated"] = "gated"  # type: ignore[assignment]
    target_keep: float = 0.5
    weight: float = Field(1.0, gt=0.0)
    level: Literal["channel", "block"] = "channel"
    skip: list[str] = Field(default_factory=list)
    prune_at_epoch: int | None = Field(None, ge=1)

    @field_validator("target_keep")
    @classmethod
    def _target(cls, value: float) -> float:
        return check_target(value)

    def gate_parts(self) -> list[str]:
        parts = [f"target={self.target_keep:g}"]
        if self.level != "channel":
            parts.append(self.level)
        if self.weight != 1.0:
            parts.append(f"weight={self.weight:g}")
        if self.prune_at_epoch is not None:
            parts.append(f"prune@{self.prune_at_epoch}")
        return parts

    def label_parts(self) -> list[str]:
        return ["gated", *self.gate_parts()]


class GatedSSPropConfig(GatedConfig, SSPropConfig):
    """The fields of both: gates on the model, ssProp's schedule on its convolutions."""

    name: Literal["gated+ssprop"] = "gated+ssprop"  # type: ignore[assignment]

    def label_parts(self) -> list[str]:
        first, *rest = SSPropConfig.label_parts(self)
        return [f"gated+{first}", *rest, *self.gate_parts()]


class Gating:
    """The gate hooks shared by both methods."""

    config: GatedConfig
    epochs: int

    def _init_gating(self) -> None:
        self.masks: Masks | None = None
        self.states = pd.DataFrame()

    def _gate(self, model: nn.Module) -> nn.Module:
        c = self.config
        if c.prune_at_epoch is not None and c.prune_at_epoch >= self.epochs:
            raise ValueError(
                f"prune_at_epoch: {c.prune_at_epoch} must be below train.epochs ({self.epochs})"
            )
        return add_gates(model, c.target_keep, c.level, c.skip)

    def _prune(self, model: nn.Module) -> nn.Module:
        self.states = gate_states(model)
        warn_gates(self.states, stacklevel=3)  # far from the target or not polarized
        self.masks = consensus(model)
        return prune_by(model, self.masks)

    def start_epoch(self, model: nn.Module, epoch: int) -> nn.Module | None:
        if self.masks is None and epoch == self.config.prune_at_epoch:
            return self._prune(model)
        return None

    def extra_loss(self, model: nn.Module) -> Any:
        if self.masks is not None:
            return None
        return self.config.weight * polarization_loss(model)

    def finalize(self, model: nn.Module) -> nn.Module:
        return model if self.masks is not None else self._prune(model)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks, "states": self.states.to_dict("list")}

    def load_state_dict(self, model: nn.Module, state: dict[str, Any]) -> nn.Module | None:
        if state.get("masks") is None:
            return None
        self.masks, self.states = state["masks"], pd.DataFrame(state["states"])
        return prune_by(model, self.masks)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {GATES: self.states} if not self.states.empty else {}

    def notes(self) -> list[str]:
        """A line per gated group that was far from its target keep or not polarized when
        it was pruned, with what to change (``gate_warnings``)."""
        if self.states.empty or "distance" not in self.states:  # a checkpoint from before
            return []
        return gate_warnings(self.states)


@register_method
class Gated(Gating, Method):
    """Gates the model, adds the polarizing loss, prunes at ``prune_at_epoch`` or the end."""

    name = "gated"
    config_class = GatedConfig
    config: GatedConfig

    def __init__(self, config: GatedConfig, epochs: int) -> None:  # type: ignore[override]
        super().__init__(config, epochs)
        self._init_gating()

    def prepare(self, model: nn.Module) -> nn.Module:
        return self._gate(model)


@register_method
class GatedSSProp(Gating, SSProp):
    """``gated`` with ssProp layers (and schedule) in place of the convolutions."""

    name = "gated+ssprop"
    config_class = GatedSSPropConfig
    config: GatedSSPropConfig

    def __init__(self, config: GatedSSPropConfig, epochs: int) -> None:  # type: ignore[override]
        super().__init__(config, epochs)
        self._init_gating()

    def prepare(self, model: nn.Module) -> nn.Module:
        return SSProp.prepare(self, self._gate(model))
