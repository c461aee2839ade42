"""Step prices from the real epoch loop: the trainer's own ``train_epoch`` runs the priced
run's epochs as training runs them (its shuffled batches moved to the device, the method's
hooks, the step's FLOP bookkeeping, a per-step callback, the epoch's set-up) and is stopped
once enough steps at the priced keep were measured (docs/estimate.md).

A step's **wall time** is the time from the previous step's callback to its own (the first
step of an epoch includes the epoch's set-up: the method's ``start_epoch``, the shuffle);
its phase windows are read as the growth of the meter's accumulated windows between two
callbacks. Isolated steps (:func:`.prices.measure_steps`) cost less than the loop's: on
the quick start 11-31% less (docs/benchmarks.md), which the estimate then predicted too
little."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

from ...errors import UserError
from ...profilers import EnergyMeter, Measurement
from ...store import PHASES
from ..run.trainer import RunDiverged, StepInfo, train_epoch
from .plans import RunPlan
from .prices import MIN_STEPS, SCALED_PHASES, STOP_RSE, WARMUP_STEPS, Prices, split_unit

LOOP_STEP_FACTOR = 3
"""The loop gives up after ``LOOP_STEP_FACTOR * (WARMUP_STEPS + max_steps)`` steps of any
keep (a schedule that changes keep within an epoch); the estimate then prices the keep with
isolated steps (:func:`.prices.measure_steps`)."""


class _Enough(Exception):
    """Raised from the step callback to stop ``train_epoch`` once the price is measured."""


def _phase_totals(meter: EnergyMeter) -> dict[str, Measurement | None]:
    return {phase: meter.totals(phase) for phase in PHASES if phase != "eval"}


def _difference(after: Measurement | None, before: Measurement | None) -> Measurement | None:
    """What one phase's windows added between two readings (None: no window)."""
    if after is None:
        return None
    if before is None:
        return after
    if after.time_s == before.time_s:
        return None
    energy: dict[str, float | None] = {}
    for source, value in after.energy_j.items():
        was = before.energy_j.get(source)
        energy[source] = None if value is None or was is None else value - was
    return Measurement(after.name, after.time_s - before.time_s, energy, after.provenance)


class _LoopRecorder:
    """The step callback: times each step of the loop and reads its phase windows; counts
    the steps at ``keep`` (after ``WARMUP_STEPS`` of them) into ``prices``."""

    def __init__(
        self, meter: EnergyMeter, keep: float, prices: Prices, max_steps: int, skip_last: bool
    ) -> None:
        self.meter, self.keep, self.prices, self.max_steps = meter, keep, prices, max_steps
        self.skip_last = skip_last  # the epoch's last step is short: not measured
        self.seen = 0
        self.steps = 0
        self.mark()

    def mark(self) -> None:
        self.t0 = time.perf_counter()
        self.before = _phase_totals(self.meter)

    def __call__(self, info: StepInfo) -> None:
        wall_s = time.perf_counter() - self.t0
        after = _phase_totals(self.meter)
        phases = {p: _difference(after[p], self.before[p]) for p in after}
        self.steps += 1
        short = self.skip_last and info.step == info.steps - 1
        if info.keep == self.keep and not short:
            self.seen += 1
            if self.seen > WARMUP_STEPS:
                self.prices.add(*split_unit(phases, wall_s, SCALED_PHASES))
        p = self.prices
        if p.n >= min(MIN_STEPS, self.max_steps) and p.rse() < STOP_RSE:
            p.stopped = "rse"
            raise _Enough
        if p.n >= self.max_steps:
            p.stopped = "limit"
            raise _Enough
        if self.steps >= LOOP_STEP_FACTOR * (WARMUP_STEPS + self.max_steps):
            raise _Enough
        self.mark()


def measure_loop_steps(
    plan: RunPlan, meter: EnergyMeter, keep: float, max_steps: int
) -> Prices | None:
    """Steps at ``keep`` as the run's epoch loop trains them: ``train_epoch`` over the
    run's epochs whose schedule has the keep (round and round, as long as needed),
    ``WARMUP_STEPS`` steps at the keep unmeasured, then
    measured until the relative standard error of the mean step time is below ``STOP_RSE``
    (after ``MIN_STEPS``) or ``max_steps`` were measured. Only full batches are measured (a
    short last batch of an epoch is skipped). None when the run's schedule gives fewer than
    two steps at the keep within the loop's step budget (``LOOP_STEP_FACTOR``)."""
    spec = plan.spec
    ctx = replace(plan.ctx)  # the run's model, method, optimizer and FLOP cache
    prices = Prices(plan.full_batch)
    last_short = plan.steps_per_epoch * plan.full_batch != len(ctx.data.x_train)
    recorder = _LoopRecorder(meter, keep, prices, max_steps, last_short)
    epochs = [
        e
        for e in range(plan.epochs)
        if keep in ctx.method.scheduler.epoch_keeps(e, plan.steps_per_epoch)
    ]
    try:  # the recorder ends the loop: it counts every step against its budget
        for epoch in itertools.cycle(epochs):
            recorder.mark()
            train_epoch(ctx, spec, meter, epoch, recorder)
    except _Enough:
        pass
    except RunDiverged as exc:
        raise UserError(f"methods: {spec.label}: calibration: {exc}") from None
    ctx.model.train()
    if prices.n < 2:
        return None
    prices.stopped = prices.stopped or "limit"
    return prices
