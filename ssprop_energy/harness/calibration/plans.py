"""The planned runs a calibration prices: each run built as it will train, its steps per keep
and samples from its schedule, and the keys under which runs share a price (the estimate,
docs/estimate.md, and the phase calibration, docs/phases.md)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...data import Dataset
from ...flops.training import count_flops_at
from ...methods import Method
from ...sparse import DropScheduler
from ..run.build import RunContext, build_run, load_run_data
from ..runs import RunSpec


def step_counts(
    scheduler: DropScheduler, epochs: int, batch_sizes: Sequence[int]
) -> Counter[tuple[float, int]]:
    """How many training steps a run takes at each (keep, batch samples): the scheduler's
    keep at every step of every epoch, the step's samples from ``batch_sizes``."""
    counts: Counter[tuple[float, int]] = Counter()
    for epoch in range(epochs):
        keeps = scheduler.epoch_keeps(epoch, len(batch_sizes))
        counts.update(zip(keeps, batch_sizes, strict=True))
    return counts


def batch_sizes(samples: int, batch_size: int) -> list[int]:
    """The samples of each batch of one pass over ``samples`` (the last may be short)."""
    return [min(batch_size, samples - start) for start in range(0, samples, batch_size)]


@dataclass
class RunPlan:
    """A planned run: its built context, steps per (keep, samples), validation batches."""

    spec: RunSpec
    ctx: RunContext
    counts: Counter[tuple[float, int]]
    val_sizes: list[int]
    price_keys: dict[float, str] = field(default_factory=dict)
    eval_key: str = ""

    @property
    def epochs(self) -> int:
        return self.spec.train.epochs

    @property
    def unit(self) -> int:
        """Samples of a calibrated step: a full batch (the training set, when smaller)."""
        return min(self.spec.data.batch_size, len(self.ctx.data.x_train))

    def notes(self) -> list[str]:
        """What the prediction of this run cannot know."""
        notes = []
        if self.spec.stop_at_target:
            notes.append("stop_at_target: predicted for every planned epoch")
        if type(self.ctx.method).start_epoch is not Method.start_epoch:
            notes.append("the method may change the model during training: priced as prepared")
        return notes


def price_key(spec: RunSpec, ctx: RunContext, keep: float) -> str:
    """Runs share a step price at ``keep`` when their models, as their methods prepared
    them, have the same parameters, trainable parameters and analytic FLOPs (forward,
    backward, selection) at that keep, with the same task, data, batch size, optimizer,
    device and precision. ``keep`` 1.0 of a model whose layers ssProp converted is priced
    with its dense twin: at keep 1.0 those layers run torch's own."""
    report = count_flops_at(ctx.model, (spec.data.batch_size, *ctx.data.input_shape), keep)
    params = list(ctx.model.parameters())
    return json.dumps(
        [
            spec.task.model_dump(mode="json"),
            spec.data.model_dump(mode="json"),
            [spec.train.optimizer, spec.train.amp, str(ctx.device)],
            [sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)],
            [report.forward, report.backward, report.selection, keep],
        ],
        sort_keys=True,
    )


def plan_run(spec: RunSpec, data: Dataset) -> RunPlan:
    """Build the run (seeded, on its device) and count its steps per keep and samples."""
    ctx = build_run(spec, data)
    sizes = batch_sizes(len(data.x_train), spec.data.batch_size)
    counts = step_counts(ctx.method.scheduler, spec.train.epochs, sizes)
    plan = RunPlan(spec, ctx, counts, batch_sizes(len(data.x_val), spec.data.batch_size))
    keeps = dict.fromkeys(k for k, _ in counts)
    plan.price_keys = {k: price_key(spec, ctx, k) for k in keeps}
    plan.eval_key = price_key(spec, ctx, 1.0)
    return plan


def first_position(plan: RunPlan, keep: float) -> tuple[int, int]:
    """The first (epoch, step) at which the run's schedule uses ``keep``."""
    steps = len(batch_sizes(len(plan.ctx.data.x_train), plan.spec.data.batch_size))
    for epoch in range(plan.epochs):
        keeps = plan.ctx.method.scheduler.epoch_keeps(epoch, steps)
        if keep in keeps:
            return epoch, keeps.index(keep)
    raise ValueError(f"keep {keep} is not in the schedule")


def plan_sweep(specs: Sequence[RunSpec]) -> list[RunPlan]:
    """Every run of ``specs`` planned, each data set loaded once."""
    data: dict[str, Dataset] = {}
    plans = []
    for spec in specs:
        key = spec.data.model_dump_json() + spec.task.model_dump_json()
        if key not in data:
            data[key] = load_run_data(spec)
        plans.append(plan_run(spec, data[key]))
    return plans
