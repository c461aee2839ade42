"""``ssprop``: sparse backward in every convolution (or the chosen layer types) under a drop
schedule (Zhong, Huang, Shi, arXiv 2408.12561); see docs/sparse.md."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from torch import nn

from ..sparse import DropScheduler, convert_model, sparse_layers, synced_scores
from ..sparse.schedule import BY, MODES
from ..sparse.selection import SELECTIONS
from .base import Method, MethodConfig, register_method

LAYER_TYPES: dict[str, type[nn.Module]] = {
    "Conv1d": nn.Conv1d,
    "Conv2d": nn.Conv2d,
    "Conv3d": nn.Conv3d,
    "Linear": nn.Linear,
}

LayerType = Literal["Conv1d", "Conv2d", "Conv3d", "Linear"]
"""A key of ``LAYER_TYPES``: a layer type ssProp can convert."""


def _conv2d_only() -> list[LayerType]:
    return ["Conv2d"]


def _fraction(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1], got {value}")
    return value


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


class SSPropConfig(MethodConfig):
    """The keep, its schedule, the channel selection and which layers become sparse."""

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
    layers: list[LayerType] = Field(default_factory=_conv2d_only)
    sparse_input_grad: bool = True
    sync_selection: bool = False
    """In a distributed run: all-reduce the channel scores before the top-k, so every rank
    keeps the same channels (else each rank selects from its own output gradient)."""

    @model_serializer(mode="wrap")
    def _without_default_sync(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``sync_selection`` only when true, so run ids from before it stay the same."""
        data: dict[str, Any] = handler(self)
        if not self.sync_selection:
            data.pop("sync_selection", None)
        return data

    @field_validator("keep")
    @classmethod
    def _keep(cls, value: float) -> float:
        return _fraction(value)

    @field_validator("min_keep")
    @classmethod
    def _min_keep(cls, value: float | None) -> float | None:
        return None if value is None else _fraction(value)

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        return _one_of(value, MODES)

    @field_validator("by")
    @classmethod
    def _by(cls, value: str) -> str:
        return _one_of(value, BY)

    @field_validator("selection")
    @classmethod
    def _selection(cls, value: str) -> str:
        return _one_of(value, SELECTIONS)

    @model_validator(mode="after")
    def _schedule(self) -> SSPropConfig:
        if self.mode != "constant" and self.min_keep is None:
            raise ValueError(f"min_keep: required for mode {self.mode!r}")
        if self.min_keep is not None and self.min_keep > self.keep:
            raise ValueError(f"min_keep: {self.min_keep} must not exceed keep ({self.keep})")
        return self

    def label_parts(self) -> list[str]:
        parts = ["ssprop", f"keep={self.keep:g}"]
        if self.mode != "constant":
            parts.append(f"{self.mode} min={self.min_keep:g} by {self.by}")
        if self.interleave:
            parts.append("interleave")
        if self.warmup:
            parts.append(f"warmup={self.warmup}")
        if self.selection != "topk":
            parts.append(self.selection)
        if not self.sparse_input_grad:
            parts.append("dense-input-grad")
        if self.sync_selection:
            parts.append("sync-selection")
        return parts


@register_method
class SSProp(Method):
    """Converts the chosen layers to ssProp layers; the drop schedule sets their keep."""

    name = "ssprop"
    config_class = SSPropConfig
    config: SSPropConfig

    def __init__(self, config: SSPropConfig, epochs: int) -> None:  # type: ignore[override]
        super().__init__(config, epochs)
        self.scheduler = DropScheduler(
            config.mode,
            config.keep,
            config.min_keep,
            epochs=epochs,
            warmup=config.warmup,
            interleave=config.interleave,
            by=config.by,
            period=config.period,
        )

    def prepare(self, model: nn.Module) -> nn.Module:
        c = self.config
        convert_model(
            model,
            keep=1.0,
            selection=c.selection,
            layers=tuple(LAYER_TYPES[t] for t in c.layers),
            skip=c.skip_layers,
            sparse_input_grad=c.sparse_input_grad,
        )
        layers = sparse_layers(model)
        if not layers:
            raise ValueError("no layer of the model was converted")
        if c.sync_selection and c.selection == "topk":
            reduce = synced_scores()
            for _, layer in layers:
                layer.score_reduce = reduce
        return model
