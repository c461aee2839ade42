"""The meta.json of a trained run: what its spec tells, what its built run adds, and each
epoch's progress towards its target."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ...store import RunMeta
from ...tasks import build_task
from ..runs import RunSpec
from .build import RunContext, step_flops
from .metering import now


def spec_meta(spec: RunSpec) -> RunMeta:
    """The run's meta.json as far as its spec alone tells (``add_built`` fills the rest)."""
    task = build_task(spec.task)
    return RunMeta(
        run_id=spec.run_id,
        sweep=spec.sweep,
        method=spec.method.name,
        method_label=spec.label,
        method_params=spec.method.model_dump(mode="json"),
        task=task.name,
        primary_metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
        seed=spec.seed,
        setup=spec.setup,
        run_config=spec.resolved(),
        epochs_planned=spec.train.epochs,
        mean_keep_planned=None,
        flops_per_step={},
        started_at=now(),
        target_accuracy=spec.target_accuracy,
    )


def add_built(meta: RunMeta, spec: RunSpec, ctx: RunContext) -> None:
    """The entries of meta.json that need the built run: planned keep, FLOPs per step."""
    fwd, bwd_dense = step_flops(ctx, 1.0, spec.data.batch_size)
    meta.mean_keep_planned = ctx.method.mean_keep_planned(
        ctx.data.steps_per_epoch(spec.data.batch_size, ctx.part)
    )
    meta.flops_per_step = {"forward": fwd, "backward_dense": bwd_dense}


def end_epoch(meta: RunMeta, spec: RunSpec, row: dict[str, Any], epochs_done: int) -> bool:
    """Record a finished epoch in ``meta``; True when the run stops at its target."""
    meta.epochs_done = epochs_done
    if spec.target_accuracy is None:
        return False
    reached = row["accuracy"] >= spec.target_accuracy
    if reached or meta.target_status == "reached":
        meta.target_status = "reached"
    else:
        meta.target_status = "not_reached"
    meta.stopped_at_target = reached and spec.stop_at_target
    return meta.stopped_at_target


def replay_epochs(meta: RunMeta, spec: RunSpec, epochs: pd.DataFrame) -> bool:
    """Record the stored epochs of a resumed run in ``meta``; True when the run had already
    stopped at its target (it was interrupted after training, while measuring inference)."""
    stop = False
    for done, (_, row) in enumerate(epochs.iterrows(), 1):
        stop = end_epoch(meta, spec, row.to_dict(), done)
    return stop
