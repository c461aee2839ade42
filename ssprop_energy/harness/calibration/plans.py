"""The planned runs a calibration prices, and the one loop that prices them: each run built
as it will train, its steps per keep and samples from its schedule, its full batch and steps
per epoch, the keys under which runs share a price, and :func:`price_each_once`, which
measures each distinct key once in a ``calibration`` window (the estimate, docs/estimate.md,
and the phase calibration, docs/phases.md).

Words: a **price key** (:func:`price_key`) names what runs share: a model as its method
prepared it, with its batch size, keep, task, data, optimizer, device and precision. A
**full batch** (:attr:`RunPlan.full_batch`) is the samples of a measured step."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import torch

from ...data import Dataset
from ...flops.training import count_flops_at
from ...methods import Method
from ...profilers import EnergyMeter
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
    def full_batch(self) -> int:
        """Samples of a measured training step: a full batch (the training set, when
        smaller)."""
        return min(self.spec.data.batch_size, len(self.ctx.data.x_train))

    @property
    def full_eval_batch(self) -> int:
        """Samples of a measured evaluation batch (the validation set, when smaller)."""
        return min(self.spec.data.batch_size, len(self.ctx.data.x_val))

    @property
    def steps_per_epoch(self) -> int:
        """Training steps of one epoch (the last batch may be short)."""
        return len(batch_sizes(len(self.ctx.data.x_train), self.spec.data.batch_size))

    def full_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over the run's training batches of ``epoch``, on the host, full batches
        only (:attr:`full_batch` samples)."""
        data, size = self.ctx.data, self.spec.data.batch_size
        for x, y in data.train_batches(size, epoch, self.spec.seed):
            if len(x) == self.full_batch:
                yield x, y

    def first_position(self, keep: float) -> tuple[int, int]:
        """The first (epoch, step) at which the run's schedule uses ``keep``."""
        for epoch in range(self.epochs):
            keeps = self.ctx.method.scheduler.epoch_keeps(epoch, self.steps_per_epoch)
            if keep in keeps:
                return epoch, keeps.index(keep)
        raise ValueError(f"keep {keep} is not in the schedule")

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


T = TypeVar("T")


@dataclass
class Priced(Generic[T]):
    """One price key, measured once: the run it was measured on (the first that has it),
    the keep (None for the run's evaluation), what the measurement gave, what it cost (the
    seconds of its ``calibration`` window and its joules over the sources with a figure,
    NaN without one), and how many runs share it."""

    plan: RunPlan
    keep: float | None
    measured: T
    time_s: float
    energy_j: float
    runs: int = 0


def step_keys(plan: RunPlan) -> Mapping[float | None, str]:
    """The price key of each keep the run's schedule uses."""
    return {keep: key for keep, key in plan.price_keys.items()}


def eval_keys(plan: RunPlan) -> Mapping[float | None, str]:
    """The price key of the run's evaluation (keep None)."""
    return {None: plan.eval_key}


def price_each_once(
    meter: EnergyMeter,
    plans: Iterable[RunPlan],
    measure: Callable[[RunPlan, float | None], T],
    keys: Callable[[RunPlan], Mapping[float | None, str]] = step_keys,
    cooldown_s: float = 0.0,
) -> dict[str, Priced[T]]:
    """Every distinct key of ``keys(plan)`` over ``plans``, measured once: ``measure(plan,
    keep)`` on the first run that has it, in a ``calibration`` window of the started
    ``meter``; every run with the key counts in its ``runs``. In the order first met.
    ``cooldown_s``: seconds to idle before every block but the first (outside the
    windows; ``energy.cooldown_s``)."""
    priced: dict[str, Priced[T]] = {}
    for plan in plans:
        for keep, key in keys(plan).items():
            if key not in priced:
                if priced and cooldown_s > 0:
                    time.sleep(cooldown_s)
                meter.begin("calibration")
                measured = measure(plan, keep)
                cost = meter.end("calibration")
                energy = cost.total_energy_j
                priced[key] = Priced(
                    plan, keep, measured, cost.time_s, math.nan if energy is None else energy
                )
            priced[key].runs += 1
    return priced
