"""Channel selection for ssProp: how many output-gradient channels to keep, and which."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist

SELECTIONS = ("topk", "random")


def check_keep(keep: float, name: str = "keep") -> float:
    """Return ``keep`` as a float, or raise ValueError naming the argument."""
    try:
        value = float(keep)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1], got {keep!r}") from None
    if not 0.0 < value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must be in (0, 1], got {keep!r}")
    return value


def check_selection(selection: str) -> str:
    """Return ``selection`` or raise ValueError naming the argument."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    return selection


def kept_count(keep: float, channels: int) -> int:
    """``max(1, floor(keep * channels + 1e-6))``: the number of channels kept."""
    return max(1, math.floor(keep * channels + 1e-6))


def kept_channels(keep: float, out_channels: int, groups: int = 1) -> int:
    """Total output channels whose gradient a sparse layer computes.

    Grouped convolutions keep the same count in every group; depthwise-style convolutions
    (one output channel per group) select whole groups with the global rule.
    """
    per_group = out_channels // groups
    if groups == 1 or per_group == 1:
        return kept_count(keep, out_channels)
    return groups * kept_count(keep, per_group)


def channel_scores(grad_output: torch.Tensor) -> torch.Tensor:
    """``mean(|dy[:, c, ...]|)`` over batch and space for every channel ``c`` (float32).

    For a Linear gradient of shape (..., features) pass it flattened to (M, features):
    the channel dimension is always dimension 1. (``abs().sum()`` rather than a fused
    ``vector_norm``: the latter is several times slower on channels-last CPU tensors.)
    """
    channels = grad_output.shape[1]
    count = grad_output.numel() // channels
    # reduced-precision gradients accumulate in float32; asking for it on a float32 tensor
    # takes a slower reduction path
    acc = None if grad_output.dtype in (torch.float32, torch.float64) else torch.float32
    if grad_output.dim() > 2 and not grad_output.is_contiguous():
        rows = grad_output.movedim(1, -1)
        if rows.is_contiguous():  # channels-last: reduce the contiguous (rows, channels) view
            return _abs_sum(rows.reshape(-1, channels), [0], acc).float() / count
    dims = [0, *range(2, grad_output.dim())]
    return _abs_sum(grad_output, dims, acc).float() / count


SCORE_CHUNK = 1 << 18
"""Elements of ``|dy|`` a CPU materialises at a time. A full-size temporary would take
fresh memory from the system and page-fault through it (several times the cost of the sum
on a 2-core machine); a small one stays in cache and reuses the allocator's free blocks."""


def _abs_sum(t: torch.Tensor, dims: list[int], acc: torch.dtype | None) -> torch.Tensor:
    """``|t|`` summed over ``dims`` (dimension 0 among them), a slice of dimension 0 at a
    time on the CPU."""
    step = max(1, t.shape[0])
    if t.device.type == "cpu":
        step = max(1, SCORE_CHUNK // max(1, t.numel() // step))
    total = t[:step].abs().sum(dim=dims, dtype=acc)
    for start in range(step, t.shape[0], step):
        total += t[start : start + step].abs().sum(dim=dims, dtype=acc)
    return total


ScoreReduce = Callable[[torch.Tensor], None]
"""Combines a layer's channel scores in place with other processes' (an all-reduce)."""


def select_channels(
    grad_output: torch.Tensor,
    keep: float,
    groups: int = 1,
    selection: str = "topk",
    reduce: ScoreReduce | None = None,
) -> torch.Tensor:
    """Sorted indices of the output channels to keep (dimension 1 of ``grad_output``);
    ``reduce``: top-k on the channel scores as ``reduce`` leaves them (summed over the ranks
    of a distributed run, so every rank keeps the same channels)."""
    channels = grad_output.shape[1]
    if selection == "topk":
        scores = channel_scores(grad_output)
        if reduce is not None:
            reduce(scores)
    else:
        scores = torch.rand(channels, device=grad_output.device)
    per_group = channels // groups
    if groups == 1 or per_group == 1:
        idx = torch.topk(scores, kept_count(keep, channels), sorted=False).indices
        return idx.sort().values
    k = kept_count(keep, per_group)
    top = torch.topk(scores.view(groups, per_group), k, dim=1, sorted=False).indices.sort(dim=1)
    offsets = torch.arange(groups, device=top.values.device).unsqueeze(1) * per_group
    return (top.values + offsets).flatten()


_SCORE_GROUPS: dict[int, object] = {}
"""The process group of the score all-reduce, per default group (one is created per run
of processes, on every rank at once)."""


def synced_scores() -> ScoreReduce | None:
    """The all-reduce (sum) of a layer's channel scores over the ranks of the running
    distributed run, on a process group of its own (apart from DistributedDataParallel's
    gradient buckets); None outside a distributed run. Call it on every rank at once."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.group.WORLD
    if id(world) not in _SCORE_GROUPS:
        _SCORE_GROUPS[id(world)] = dist.new_group()
    group = _SCORE_GROUPS[id(world)]

    def reduce(scores: torch.Tensor) -> None:
        dist.all_reduce(scores, op=dist.ReduceOp.SUM, group=group)  # type: ignore[arg-type]

    return reduce
