"""Differential phase calibration: the joules of a training step's forward, backward and
optimizer phases, from blocks long enough for the energy counter (docs/phases.md).

A phase's own window lasts milliseconds, shorter than a GPU energy counter's update period,
so the meter splits it by time (``split``), as if every phase drew the same power. Here, for
one price key (model, batch, keep, task, AMP: :func:`.plans.price_key`), blocks of the run's
own steps (:func:`.trainer.train_step`) cut short after the forward, after the backward, and
whole, each at least ``MIN_PERIODS`` update periods of the meter's slowest source long, so
each block is read directly. ``REPEATS`` blocks of each kind, interleaved, give per-step
means, and the phases come from their differences:

    forward = F,  backward = FB - F,  optimizer = S - FB

each with a t interval (:func:`ssprop_energy.stats.t_interval`, the two means' standard errors in
quadrature). A phase whose interval holds 0 is within the calibration's noise: no figure."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import UserError
from ...profilers import EnergyMeter, Measurement
from ...provenance import UNAVAILABLE, combine, combine_sources
from ...stats import LEVEL, mean_var, t_interval
from ...store import PHASE_CALIBRATION, atomic_write_csv, read_phase_calibration
from ...tasks import Batch
from ..run.epoch import EpochAccumulator
from ..run.metering import build_meter
from ..run.trainer import RunDiverged, grad_scaler, train_step
from ..runs import RunSpec
from .plans import Priced, RunPlan, plan_sweep, price_each_once
from .prices import WARMUP_STEPS

MIN_PERIODS = 20
"""A block lasts at least this many update periods of the meter's slowest source."""
REPEATS = 3
"""Blocks of each kind (at least 2: an interval needs a spread)."""
PILOT_STEPS = 2
"""Steps of the unmeasured block of each kind that sizes the measured ones."""
BATCHES = 4
"""Full training batches a calibration cycles through, moved to the device once."""
CALIBRATED = ("forward", "backward", "optimizer")
"""The calibrated phases; each is also the kind of block that ends with it."""
WINDOW = "phase_calibration"
"""The meter window of one block."""


@dataclass(frozen=True)
class PhasePrice:
    """One phase of one price key, per training step: joules (NaN without a figure or
    within noise), their interval, seconds, label, and a note saying why there is no figure.
    ``windowed_j``/``windowed_provenance``: what the phase's own windows gave in the
    full-step blocks (the meter's per-window figure, for comparison)."""

    phase: str
    energy_j: float
    energy_j_low: float
    energy_j_high: float
    time_s: float
    provenance: str
    windowed_j: float
    windowed_provenance: str
    note: str = ""


def _mean_and_error(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the variance of the mean."""
    mean, var = mean_var(values)
    return mean, var / len(values)


@dataclass
class PhaseBlocks:
    """The measured blocks of one price key: steps per block and one Measurement per block, by
    kind (``CALIBRATED``), and the phase windows of the full-step blocks."""

    steps: dict[str, int]
    blocks: dict[str, list[Measurement]] = field(default_factory=dict)
    windows: dict[str, Measurement] = field(default_factory=dict)

    def sources(self) -> list[str]:
        """The sources with a figure in every block."""
        every = [m for kind in CALIBRATED for m in self.blocks[kind]]
        return [s for s in every[0].energy_j if all(m.energy_j[s] is not None for m in every)]

    def per_step(self, kind: str, quantity: str) -> list[float]:
        """Per block of ``kind``: ``quantity`` (``time_s``, ``energy_j`` over the sources
        with a figure, or one source) per step."""
        sources = self.sources() if quantity == "energy_j" else [quantity]
        values = []
        for m in self.blocks[kind]:
            value = m.time_s if quantity == "time_s" else sum(m.energy_j[s] or 0.0 for s in sources)
            values.append(value / self.steps[kind])
        return values

    def difference(self, phase: str, quantity: str) -> tuple[float, float, float]:
        """(mean, low, high) per step of ``phase``: its block minus the block before it."""
        upper = _mean_and_error(self.per_step(phase, quantity))
        index = CALIBRATED.index(phase)
        lower = _mean_and_error(self.per_step(CALIBRATED[index - 1], quantity)) if index else (0, 0)
        mean, var = upper[0] - lower[0], upper[1] + lower[1]
        return (mean, *t_interval(mean, var, len(self.blocks[phase]) - 1))

    def label(self) -> str:
        """Every block's label over the sources (:func:`combine_sources` of each source's
        :func:`combine`)."""
        every = [m for kind in CALIBRATED for m in self.blocks[kind]]
        names = every[0].provenance
        return combine_sources(combine(m.provenance[s] for m in every) for s in names)

    def prices(self) -> list[PhasePrice]:
        """Every calibrated phase's price; see the module doc."""
        label = self.label() if self.sources() else UNAVAILABLE
        prices = []
        for phase in CALIBRATED:
            windowed = self.windows.get(phase)
            steps = self.steps["optimizer"] * len(self.blocks["optimizer"])
            w_total = None if windowed is None else windowed.total_energy_j
            w_j = math.nan if w_total is None else w_total / steps
            w_label: str = UNAVAILABLE
            if windowed is not None:
                w_label = combine_sources(windowed.provenance.values())
            seconds = self.difference(phase, "time_s")[0]
            energy, low, high, note = math.nan, math.nan, math.nan, ""
            if label == UNAVAILABLE:
                note = "no energy figure"
            else:
                energy, low, high = self.difference(phase, "energy_j")
                if low <= 0:
                    note = (
                        f"within its own noise: {LEVEL:.0%} CI {low:.3g} to {high:.3g} J per step"
                    )
                    energy = math.nan
            prices.append(PhasePrice(phase, energy, low, high, seconds, label, w_j, w_label, note))
        return prices


def _device_batches(plan: RunPlan, epoch: int) -> Iterator[Batch]:
    """Up to ``BATCHES`` full training batches of ``epoch`` (:meth:`.RunPlan.full_batches`),
    moved to the device once, round and round (so a block's data phase only hands over a
    batch)."""
    device = plan.ctx.device
    first = itertools.islice(plan.full_batches(epoch), BATCHES)
    return itertools.cycle([(x.to(device), y.to(device)) for x, y in first])


def measure_blocks(
    plan: RunPlan,
    meter: EnergyMeter,
    position: tuple[int, int],
    repeats: int | None = None,
    min_periods: int | None = None,
) -> PhaseBlocks:
    """Warm-up steps, one unmeasured pilot block of each kind (its time sizes the measured
    blocks to ``MIN_PERIODS`` update periods), then ``repeats`` rounds of one block of each
    kind, all at ``position`` (epoch, step: where the run's schedule has the keep). Each
    block follows one unmeasured step of its own kind, so the power drawn just before its
    start is the power drawn at its end: an energy counter's lag (the energy since its last
    update) then errs as much at both edges, on average."""
    repeats = REPEATS if repeats is None else repeats
    if repeats < 2:
        raise ValueError(f"repeats must be >= 2 (an interval needs a spread), got {repeats}")
    ctx, spec = plan.ctx, plan.spec
    ctx.model.train()
    scaler = grad_scaler(ctx, spec)
    batches = _device_batches(plan, position[0])
    acc = EpochAccumulator(position[0])

    def run(kind: str, steps: int, into: EpochAccumulator) -> None:
        try:
            for _ in range(steps):
                train_step(ctx, spec, meter, into, scaler, batches, position, until=kind)
        except RunDiverged as exc:
            raise UserError(f"methods: {spec.label}: phase calibration: {exc}") from None

    def block(kind: str, steps: int, into: EpochAccumulator) -> Measurement:
        run(kind, 1, acc)  # a lead-in: the hardware draws at both edges as in the block
        meter.begin(WINDOW)
        try:
            run(kind, steps, into)
        finally:
            measurement = meter.end(WINDOW)
        return measurement

    run("optimizer", WARMUP_STEPS, acc)
    periods = MIN_PERIODS if min_periods is None else min_periods
    minimum_s = periods * meter.update_period_s
    steps = {}
    for kind in CALIBRATED:
        pilot = block(kind, PILOT_STEPS, acc)
        per_step = pilot.time_s / PILOT_STEPS
        steps[kind] = max(1, math.ceil(minimum_s / per_step)) if per_step > 0 else 1
    result = PhaseBlocks(steps, {kind: [] for kind in CALIBRATED})
    full = EpochAccumulator(position[0])
    for _ in range(repeats):
        for kind in CALIBRATED:
            into = full if kind == "optimizer" else acc
            result.blocks[kind].append(block(kind, steps[kind], into))
    result.windows = {p: m for p in CALIBRATED if (m := full.phases[p]) is not None}
    return result


def price_id(key: str) -> str:
    """A price key's short id (a hash of it): phase_calibration.csv's ``unit`` column and
    the ``unit`` of meta.json's entries."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def phase_table(priced: Mapping[str, Priced[PhaseBlocks]]) -> pd.DataFrame:
    """phase_calibration.csv: one row per price key and calibrated phase (docs/phases.md)."""
    rows = []
    for key, one in priced.items():
        spec, blocks = one.plan.spec, one.measured
        for price in blocks.prices():
            rows.append(
                {
                    "unit": price_id(key),
                    "model": spec.model.label,
                    "batch_size": one.plan.full_batch,
                    "keep": one.keep,
                    "task": spec.task.name,
                    "amp": spec.train.amp,
                    "calibrated_on": spec.run_id,
                    "runs": one.runs,
                    "phase": price.phase,
                    "steps_per_block": blocks.steps[price.phase],
                    "blocks": len(blocks.blocks[price.phase]),
                    "time_s_per_step": price.time_s,
                    "energy_j_per_step": price.energy_j,
                    "energy_j_per_step_low": price.energy_j_low,
                    "energy_j_per_step_high": price.energy_j_high,
                    "provenance": price.provenance,
                    "windowed_energy_j_per_step": price.windowed_j,
                    "windowed_provenance": price.windowed_provenance,
                    "note": price.note,
                    "time_s": one.time_s,
                    "energy_j": one.energy_j,
                }
            )
    return pd.DataFrame(rows)


def stored_prices(table: pd.DataFrame) -> dict[str, list[PhasePrice]]:
    """The prices of phase_calibration.csv's rows (:func:`.store.read_phase_calibration`)
    by price id."""
    prices: dict[str, list[PhasePrice]] = {}
    for row in table.to_dict("records"):
        note = row["note"] if isinstance(row["note"], str) else ""
        prices.setdefault(str(row["unit"]), []).append(
            PhasePrice(
                str(row["phase"]),
                float(row["energy_j_per_step"]),
                float(row["energy_j_per_step_low"]),
                float(row["energy_j_per_step_high"]),
                float(row["time_s_per_step"]),
                str(row["provenance"]),
                float(row["windowed_energy_j_per_step"]),
                str(row["windowed_provenance"]),
                note,
            )
        )
    return prices


def run_steps(plan: RunPlan) -> list[list[Any]]:
    """``[epoch, keep, steps]``: the run's planned steps per epoch and keep."""
    scheduler = plan.ctx.method.scheduler
    steps: list[list[Any]] = []
    for epoch in range(plan.epochs):
        keeps = scheduler.epoch_keeps(epoch, plan.steps_per_epoch)
        steps += [[epoch, keep, keeps.count(keep)] for keep in dict.fromkeys(keeps)]
    return steps


def run_entry(plan: RunPlan, prices: Mapping[str, list[PhasePrice]]) -> dict[str, Any]:
    """A run's ``phase_calibration`` entry of meta.json: the price of each calibrated phase
    at each keep its schedule uses (``prices`` by price id), and its planned steps at each
    keep per epoch (the report multiplies them over the epochs the run stored)."""
    entry = []
    for keep, key in plan.price_keys.items():
        for price in prices[price_id(key)]:
            entry.append(
                {
                    "keep": keep,
                    "phase": price.phase,
                    "unit": price_id(key),
                    "energy_j_per_step": None if math.isnan(price.energy_j) else price.energy_j,
                    "provenance": price.provenance,
                    "note": price.note,
                }
            )
    return {"prices": entry, "steps": run_steps(plan)}


def predicted_phases(plan: RunPlan, prices: Mapping[str, list[PhasePrice]]) -> dict[str, float]:
    """``energy_j_<phase>_calibrated`` over every planned step of the run (estimate.csv):
    each keep's calibrated joules per step times its planned steps; NaN where a keep's
    phase has no figure."""
    steps: dict[float, int] = {}
    for (keep, _), count in plan.counts.items():
        steps[keep] = steps.get(keep, 0) + count
    totals: dict[str, float] = {}
    for keep, key in plan.price_keys.items():
        for price in prices[price_id(key)]:
            column = f"energy_j_{price.phase}_calibrated"
            totals[column] = totals.get(column, 0.0) + steps[keep] * price.energy_j
    return totals


@dataclass(frozen=True)
class SweepPhases:
    """What a sweep's phase calibration gave: the prices by price id (calibrated now or
    read from phase_calibration.csv), how many price keys were calibrated now, and what
    that cost (seconds, joules over the sources with a figure, label)."""

    prices: dict[str, list[PhasePrice]]
    calibrated: int
    time_s: float
    energy_j: float
    provenance: str
    path: Path


def _calibrate(
    plans: Sequence[RunPlan],
    meter: EnergyMeter,
    known: Collection[str],
    repeats: int | None,
    min_periods: int | None,
) -> tuple[dict[str, Priced[PhaseBlocks]], tuple[float, float, str]]:
    """The blocks of every price key of ``plans`` whose id is not ``known``, each measured
    once (:func:`.plans.price_each_once`) in the started ``meter``; with what they cost
    (seconds, joules over the sources with a figure or NaN, label: the meter's calibration
    windows opened here)."""

    def keys(plan: RunPlan) -> dict[float | None, str]:
        return {k: key for k, key in plan.price_keys.items() if price_id(key) not in known}

    def measure(plan: RunPlan, keep: float | None) -> PhaseBlocks:
        assert keep is not None  # a step key
        return measure_blocks(plan, meter, plan.first_position(keep), repeats, min_periods)

    before = meter.totals("calibration")
    priced = price_each_once(meter, plans, measure, keys)
    cost = meter.totals("calibration")
    assert cost is not None
    seconds, energy = cost.time_s, cost.total_energy_j
    if before is not None:  # the meter's earlier calibration windows (the estimate's)
        seconds -= before.time_s
        energy = (
            None
            if energy is None or before.total_energy_j is None
            else energy - before.total_energy_j
        )
    label = combine_sources(cost.provenance[s.name] for s in meter.sources)
    return priced, (seconds, math.nan if energy is None else energy, label)


def calibrate_sweep_phases(
    runs: Sequence[RunSpec] | Sequence[RunPlan],
    sweep_dir: Path,
    repeats: int | None = None,
    min_periods: int | None = None,
    *,
    meter: EnergyMeter | None = None,
) -> tuple[SweepPhases, dict[str, dict[str, Any]]]:
    """The phase prices of every price key of ``runs`` (specs, planned here, or plans):
    those in the sweep folder's phase_calibration.csv are reused, the others measured
    (:func:`measure_blocks`; ``repeats`` and ``min_periods`` default to ``REPEATS`` and
    ``MIN_PERIODS``) in ``meter`` (started; by default one built from the first run's
    ``energy`` section) and added to the file; with each run's meta.json entry by run id."""
    t0 = time.perf_counter()
    plans = [r for r in runs if isinstance(r, RunPlan)]
    plans += plan_sweep([r for r in runs if isinstance(r, RunSpec)])
    path = sweep_dir / PHASE_CALIBRATION
    table = read_phase_calibration(sweep_dir)
    prices = stored_prices(table)
    needed = {price_id(k) for plan in plans for k in plan.price_keys.values()}
    if needed <= prices.keys():
        result = SweepPhases(prices, 0, time.perf_counter() - t0, 0.0, UNAVAILABLE, path)
    else:
        with contextlib.ExitStack() as stack:
            if meter is None:
                first = plans[0]
                meter = stack.enter_context(build_meter(first.spec.energy, first.ctx.device))
            priced, cost = _calibrate(plans, meter, prices.keys(), repeats, min_periods)
        new = phase_table(priced)
        atomic_write_csv(path, pd.concat([table, new], ignore_index=True) if len(table) else new)
        result = SweepPhases(prices | stored_prices(new), len(priced), *cost, path)
    return result, {plan.spec.run_id: run_entry(plan, result.prices) for plan in plans}
