"""Step prices: the measured price of one training step at one keep, of one evaluation
batch, and of an epoch's extras, on this machine, with the run's own step code and
EnergyMeter (docs/estimate.md). The estimate measures each price key once through
:func:`.plans.price_each_once`.

Words: a price's **unit** is what one of its samples measures, a training step or an
evaluation batch (calibration.csv's ``unit`` column: ``step`` or ``eval_batch``)."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError
from ...profilers import EnergyMeter, Measurement
from ...provenance import UNAVAILABLE, combine
from ...stats import mean_var
from ...tasks import Batch
from ..run.build import count_step_flops
from ..run.checkpoint import save_checkpoint
from ..run.epoch import EpochAccumulator
from ..run.trainer import RunDiverged, eval_flops, evaluate_metrics, grad_scaler, train_step
from .plans import RunPlan

STOP_RSE = 0.03
"""A keep's calibration stops once the relative standard error of its mean step time,
``sd / sqrt(n) / mean``, is below this (3%), or at the step limit."""
MIN_STEPS = 5
"""Measured steps before the stopping rule is first applied."""
WARMUP_STEPS = 2
"""Unmeasured steps before each keep's measured ones (kernel choice, allocator growth)."""
EVAL_BATCHES = 3
"""Measured evaluation batches per model (after one unmeasured batch)."""
SCALED_PHASES = ("data", "forward", "backward")
"""Phases whose cost grows with the batch's samples; the optimizer's does not."""
TIME = "time_s"
ENERGY = "energy_j"
"""Quantities of a price besides the energy of each source (by its name)."""


@dataclass
class Prices:
    """Samples of one calibrated unit (a training step, or an evaluation batch of ``samples``
    samples): for each quantity (``time_s``, ``energy_j`` over the sources with a figure, and
    each such source by name), one value per measured unit, split into the part that grows
    with the unit's samples (``scaled``) and the part that does not (``fixed``). A source
    without a figure in some unit has no entry; ``provenance`` labels every source."""

    samples: int
    fixed: dict[str, list[float]] = field(default_factory=dict)
    scaled: dict[str, list[float]] = field(default_factory=dict)
    provenance: dict[str, list[str]] = field(default_factory=dict)
    stopped: str = ""
    """Why measuring stopped: ``rse`` (the spread rule) or ``limit`` (the step limit)."""

    @property
    def n(self) -> int:
        return len(self.fixed.get(TIME, []))

    def add(
        self, fixed: dict[str, float], scaled: dict[str, float], labels: dict[str, str]
    ) -> None:
        """One measured unit; a source missing from ``fixed`` had no figure in it (none of
        its units count then)."""
        for name in list(self.fixed) if self.n else list(fixed):
            if name not in fixed:
                self.fixed.pop(name)
                self.scaled.pop(name)
                continue
            self.fixed.setdefault(name, []).append(fixed[name])
            self.scaled.setdefault(name, []).append(scaled[name])
        for source, label in labels.items():
            self.provenance.setdefault(source, []).append(label)

    def label(self, source: str) -> str:
        """The provenance of ``source`` over every measured unit (:func:`combine`)."""
        if source not in self.fixed:
            return UNAVAILABLE
        return combine(self.provenance.get(source, []))

    def totals(self, name: str) -> list[float]:
        """Per unit, fixed + scaled (the unit at its full ``samples``)."""
        return [f + s for f, s in zip(self.fixed[name], self.scaled[name], strict=True)]

    def mean_sd(self, name: str) -> tuple[float, float]:
        """Mean and sample standard deviation of a unit's ``name`` (NaN without a figure;
        sd 0 below two units)."""
        if name not in self.fixed:
            return math.nan, math.nan
        mean, var = mean_var(self.totals(name))
        return mean, math.sqrt(var)

    def rse(self) -> float:
        """Relative standard error of the mean unit time (inf below two units)."""
        mean, sd = self.mean_sd(TIME)
        if self.n < 2 or mean <= 0:
            return math.inf
        return sd / math.sqrt(self.n) / mean


def split_unit(
    phases: dict[str, Measurement | None], wall_s: float, scaled_phases: tuple[str, ...]
) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """(fixed, scaled, labels) of one unit from its phase windows and wall time: the time
    outside ``scaled_phases`` (other windows and the code between them) is fixed."""
    measured = [m for m in phases.values() if m is not None]
    labels: dict[str, str] = {}
    fixed: dict[str, float] = {}
    scaled: dict[str, float] = {}
    scaled_s = sum(m.time_s for p, m in phases.items() if m is not None and p in scaled_phases)
    fixed[TIME], scaled[TIME] = wall_s - scaled_s, scaled_s
    sources = list(measured[0].energy_j) if measured else []
    for source in sources:
        labels[source] = combine(m.provenance[source] for m in measured)
        values = [(p, m.energy_j[source]) for p, m in phases.items() if m is not None]
        if any(v is None for _, v in values):
            continue
        scaled[source] = sum(v for p, v in values if p in scaled_phases and v is not None)
        fixed[source] = sum(v for p, v in values if p not in scaled_phases and v is not None)
    with_figure = [s for s in sources if s in fixed]
    if with_figure:
        fixed[ENERGY] = sum(fixed[s] for s in with_figure)
        scaled[ENERGY] = sum(scaled[s] for s in with_figure)
    return fixed, scaled, labels


def _device_batches(plan: RunPlan, epoch: int) -> Iterator[Batch]:
    """The run's full training batches of ``epoch`` (:meth:`.RunPlan.full_batches`), on its
    device, round and round."""
    device = plan.ctx.device
    while True:
        for x, y in plan.full_batches(epoch):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@dataclass
class Extras:
    """What an epoch adds besides its steps and evaluation batches (seconds): counting the
    validation FLOPs (inside the epoch's ``time_s``) and saving the checkpoint (after it);
    and what a run's first epoch adds: ``count_s``, one analytic FLOP count of a batch size
    and keep (a run counts each of its (keep, batch samples) once, in its first epoch)."""

    flops_s: float
    checkpoint_s: float
    count_s: float = 0.0


def measure_steps(
    plan: RunPlan, meter: EnergyMeter, position: tuple[int, int], max_steps: int
) -> Prices:
    """Warm-up steps, then steps at ``position`` (epoch, step: where the run's schedule has
    the keep to price) until the mean step time's relative standard error is below
    ``STOP_RSE`` (after at least ``MIN_STEPS``) or ``max_steps`` were measured."""
    ctx, spec = plan.ctx, plan.spec
    ctx.model.train()
    scaler = grad_scaler(ctx, spec)
    batches = _device_batches(plan, position[0])
    prices = Prices(plan.full_batch)
    for measured in range(-WARMUP_STEPS, max_steps):
        acc = EpochAccumulator(position[0])
        t0 = time.perf_counter()
        try:
            train_step(ctx, spec, meter, acc, scaler, batches, position)
        except RunDiverged as exc:
            raise UserError(f"methods: {spec.label}: calibration: {exc}") from None
        wall_s = time.perf_counter() - t0
        if measured < 0:
            continue
        prices.add(*split_unit(acc.phases, wall_s, SCALED_PHASES))
        if prices.n >= min(MIN_STEPS, max_steps) and prices.rse() < STOP_RSE:
            prices.stopped = "rse"
            return prices
    prices.stopped = "limit"
    return prices


def measure_eval(plan: RunPlan, meter: EnergyMeter) -> Prices:
    """One unmeasured, then ``EVAL_BATCHES`` measured evaluation batches (the first
    validation batch each time), each in an ``eval`` window as in a run; every part of an
    evaluation batch grows with its samples."""
    prices = Prices(plan.full_eval_batch)
    for measured in range(-1, EVAL_BATCHES):
        meter.begin("eval")
        evaluate_metrics(plan.ctx, plan.spec, batches=1)
        m = meter.end("eval")
        if measured >= 0:
            prices.add(*split_unit({"eval": m}, m.time_s, ("eval",)))
    prices.stopped = "limit"
    return prices


def measure_extras(plan: RunPlan) -> Extras:
    """Seconds of what an epoch adds outside its metered windows (counting the validation
    FLOPs, inside the epoch's ``time_s``) and after it (saving the checkpoint), and of one
    uncached FLOP count (a full batch, keep 1.0)."""
    ctx, spec = plan.ctx, plan.spec
    eval_flops(ctx, spec)  # the counts are cached after the first call, as in a run
    t0 = time.perf_counter()
    eval_flops(ctx, spec)
    flops_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        save_checkpoint(Path(folder) / "checkpoint.pt", ctx, 1)
        checkpoint_s = time.perf_counter() - t0
    shape = ctx.data.input_shape
    t0 = time.perf_counter()
    count_step_flops({}, ctx.model, lambda n: (n, *shape), 1.0, plan.full_batch)
    return Extras(flops_s, checkpoint_s, time.perf_counter() - t0)
