"""FLOPs of a whole training run under a drop schedule, beside the dense baseline."""

from __future__ import annotations

import pandas as pd
from torch import nn

from ..sparse import DropScheduler, SSPropMixin
from ..sparse.selection import check_keep
from .counter import FlopReport, InputSpec, _count, is_conv


def count_flops_at(model: nn.Module, inputs: InputSpec, keep: float) -> FlopReport:
    """``count_flops`` as if every ssProp layer of ``model`` were at ``keep``.

    Unlike ``count_flops(..., keep=k)`` this leaves plain layers dense (the layers a
    conversion skipped stay plain): it is the step a scheduler produces. The layers' own
    keep is only read, never changed.
    """
    value = check_keep(keep)

    def keep_of(module: nn.Module) -> float:
        return value if isinstance(module, SSPropMixin) else 1.0

    return _count(model, inputs, keep_of)


def _step_flops(
    model: nn.Module, inputs: InputSpec, keep: float, cache: dict[float, tuple[int, int, int]]
) -> tuple[int, int, int]:
    """(forward, backward, backward of the convolutions) of one step, ssProp layers at keep."""
    if keep not in cache:
        report = count_flops_at(model, inputs, keep)
        conv_backward = int(report.table.loc[is_conv(report.table), "backward"].sum())
        cache[keep] = (report.forward, report.backward, conv_backward)
    return cache[keep]


def training_flops(
    model: nn.Module,
    inputs: InputSpec,
    scheduler: DropScheduler,
    epochs: int,
    steps_per_epoch: int,
    eval_steps: int = 0,
) -> pd.DataFrame:
    """Per-epoch FLOPs of training ``model`` under ``scheduler``, and the dense baseline.

    The scheduler's keep applies to the model's ssProp layers (plain layers stay dense:
    convert the model first, e.g. with ``convert_model``); one count per distinct keep.
    ``inputs`` is one step's batch; evaluation steps cost a forward pass each. Columns:
    ``epoch``, ``mean_keep``, ``flops_forward``, ``flops_backward``, ``flops_eval``,
    ``flops_total``, ``flops_backward_dense``, ``flops_total_dense``,
    ``flops_backward_conv`` and ``flops_backward_conv_dense`` (the convolutions alone),
    ``backward_saving_pct``, ``total_saving_pct``, ``conv_backward_saving_pct``; the last
    row, ``epoch == "total"``, sums the run.
    """
    cache: dict[float, tuple[int, int, int]] = {}
    forward, dense_backward, dense_conv = _step_flops(model, inputs, 1.0, cache)
    rows = []
    for epoch in range(epochs):
        keeps = scheduler.epoch_keeps(epoch, steps_per_epoch)
        steps = [_step_flops(model, inputs, k, cache) for k in keeps]
        rows.append(
            {
                "epoch": epoch,
                "mean_keep": sum(keeps) / len(keeps),
                "flops_forward": forward * steps_per_epoch,
                "flops_backward": sum(s[1] for s in steps),
                "flops_eval": forward * eval_steps,
                "flops_backward_dense": dense_backward * steps_per_epoch,
                "flops_backward_conv": sum(s[2] for s in steps),
                "flops_backward_conv_dense": dense_conv * steps_per_epoch,
            }
        )
    table = pd.DataFrame(rows)
    total = table.sum(numeric_only=True)
    total["mean_keep"] = table["mean_keep"].mean()
    table = pd.concat([table, total.to_frame().T.assign(epoch="total")], ignore_index=True)
    table["flops_total"] = table["flops_forward"] + table["flops_backward"] + table["flops_eval"]
    table["flops_total_dense"] = (
        table["flops_forward"] + table["flops_backward_dense"] + table["flops_eval"]
    )
    table["backward_saving_pct"] = 100 * (
        1 - table["flops_backward"] / table["flops_backward_dense"]
    )
    table["total_saving_pct"] = 100 * (1 - table["flops_total"] / table["flops_total_dense"])
    table["conv_backward_saving_pct"] = 100 * (
        1 - table["flops_backward_conv"] / table["flops_backward_conv_dense"]
    )
    counts = [c for c in table.columns if c.startswith("flops_")]
    table[counts] = table[counts].astype("int64")
    return table
