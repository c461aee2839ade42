"""How many samples a batch of a loop of one's own holds, whatever its container."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def samples_in(batch: Any) -> int | None:
    """The samples of a batch: the first dimension of its first tensor (in a tensor, a
    sequence or a mapping of them); None without one."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.dim() else None
    values = list(batch.values()) if isinstance(batch, Mapping) else batch
    if isinstance(values, list | tuple):
        for value in values:
            size = samples_in(value)
            if size is not None:
                return size
    return None
