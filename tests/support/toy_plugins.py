"""A method and a task as a user's own package would define them (see docs/plugins.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from ssprop_energy.methods import Method, MethodConfig
from ssprop_energy.tasks import Batch, Classification, TaskConfig


class WeightPenaltyConfig(MethodConfig):
    name: Literal["weight-penalty"] = "weight-penalty"
    weight: float = Field(0.01, gt=0.0)

    def label_parts(self) -> list[str]:
        return [self.name, f"weight={self.weight:g}"]


class WeightPenalty(Method):
    """Dense training plus ``weight`` times the squared norm of the parameters; it counts the
    calls of its hooks, so a test can see the trainer made them."""

    name = "weight-penalty"
    config_class = WeightPenaltyConfig
    config: WeightPenaltyConfig
    calls: ClassVar[dict[str, int]] = {}

    def _count(self, hook: str) -> None:
        WeightPenalty.calls[hook] = WeightPenalty.calls.get(hook, 0) + 1

    def prepare(self, model: nn.Module) -> nn.Module:
        self._count("prepare")
        return model

    def start_epoch(self, model: nn.Module, epoch: int) -> None:
        self._count("start_epoch")

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        self._count("extra_loss")
        return self.config.weight * sum(p.pow(2).sum() for p in model.parameters())

    def finalize(self, model: nn.Module) -> nn.Module:
        self._count("finalize")
        return model


class TopTwoConfig(TaskConfig):
    name: Literal["top-two"] = "top-two"


class TopTwo(Classification):
    """Classification whose primary metric is top-2 accuracy."""

    name = "top-two"
    config_class = TopTwoConfig
    primary_metric = "top2_accuracy"

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        hits = n = loss = 0.0
        for x, y in batches:
            out = model(x)
            loss += float(nn.functional.cross_entropy(out.float(), y, reduction="sum"))
            hits += float((out.topk(2, dim=1).indices == y[:, None]).any(1).sum())
            n += len(y)
        correct = hits / n
        return {"val_loss": loss / n, "accuracy": correct, "top2_accuracy": correct}
