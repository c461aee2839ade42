"""``classification``: cross-entropy on labelled images; validation accuracy is the primary
metric."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataConfig, Dataset, load_data
from .base import Batch, Task, TaskConfig, register_task


class ClassificationConfig(TaskConfig):
    name: Literal["classification"] = "classification"


@register_task
class Classification(Task):
    """Logits against integer labels: ``train_loss``/``train_accuracy`` while training,
    ``val_loss`` and ``accuracy`` (0 to 1) on the validation split."""

    name = "classification"
    config_class = ClassificationConfig
    primary_metric = "accuracy"
    higher_is_better = True

    def build_data(self, config: DataConfig) -> Dataset:
        return load_data(config)

    def model_defaults(self, data: Dataset) -> dict[str, Any]:
        return {"in_channels": data.input_shape[0], "num_classes": data.classes}

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        out = model(x)
        loss = F.cross_entropy(out.float(), y)
        return loss, {"train_accuracy": (out.argmax(1) == y).sum()}

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        loss_sum: torch.Tensor | int = 0  # sums of tensors, kept on the device until the end
        correct: torch.Tensor | int = 0
        n = 0
        for x, y in batches:
            out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
            n += len(y)
        return {"val_loss": float(loss_sum) / n, "accuracy": float(correct) / n}
