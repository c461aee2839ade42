"""``estimate_sweep``: every planned run's time, energy, CO2 and FLOPs, predicted before
training from a short calibration on this machine (docs/estimate.md).

A run's training steps are counted per keep from its schedule's exact sequence of keeps
(``method.scheduler``), each step weighted by its batch's samples; each keep's step price,
each model's evaluation price and an epoch's extras come from :mod:`.prices`, each price key
measured once (:func:`.plans.price_each_once`). A total's interval adds the error of the
calibrated means and the run's own step-to-step spread.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import UserError
from ...profilers import EnergyMeter, emissions_kg
from ...provenance import UNAVAILABLE, combine, combine_sources
from ...stats import mean_var, t_interval
from ...store import (
    CALIBRATION,
    ENERGY_PER_UNIT,
    ESTIMATE,
    PROVENANCE,
    atomic_write_csv,
    setup_label,
    source_column,
)
from ..config import ProfileConfig, sweep_folder
from ..run.build import step_flops
from ..run.metering import build_meter
from ..run.trainer import eval_flops
from ..runs import plan_runs
from .loop import measure_loop_steps
from .phases import calibrate_sweep_phases, predicted_phases
from .plans import Priced, RunPlan, eval_keys, plan_sweep, price_each_once
from .prices import ENERGY, TIME, Extras, Prices, measure_eval, measure_extras, measure_steps

DEFAULT_STEPS = 20
"""Measured steps per keep at most (``--steps``)."""


@dataclass(frozen=True)
class Part:
    """One share of a predicted total: its value, the variance of the prediction, and the
    calibration samples behind it (0 for a share without spread)."""

    value: float
    var: float = 0.0
    n: int = 0


def scaled_part(
    fixed: Sequence[float], scaled: Sequence[float], count: float, fraction_sum: float
) -> Part:
    """The cost of ``count`` units whose sample fractions (their samples over the calibrated
    unit's) sum to ``fraction_sum``: ``count * mean(fixed) + fraction_sum * mean(scaled)``.

    Its variance adds the error of the mean, ``count**2 * s**2 / n``, and the run's own
    unit-to-unit spread, ``count * s**2``, with ``s`` the sample standard deviation of one
    unit at the run's mean fraction over the ``n`` calibrated units."""
    n = len(fixed)
    ratio = fraction_sum / count if count else 0.0
    mean, s2 = mean_var([f + ratio * s for f, s in zip(fixed, scaled, strict=True)])
    return Part(count * mean, count**2 * s2 / n + count * s2, n)


def interval(parts: Iterable[Part]) -> tuple[float, float, float]:
    """(total, low, high): the sum of ``parts`` and its ``stats.LEVEL`` Student t interval,
    with the standard deviations combined in quadrature and ``min(n) - 1`` degrees of
    freedom over the parts with a spread; ``low`` is never below 0 (a cost is not
    negative)."""
    parts = list(parts)
    total = sum(p.value for p in parts)
    spread = [p for p in parts if p.var > 0]
    if not spread:
        return total, total, total
    low, high = t_interval(total, sum(p.var for p in spread), min(p.n for p in spread) - 1)
    return total, max(0.0, low), high


def keep_shares(
    counts: Counter[tuple[float, int]], full_batch: int
) -> dict[float, tuple[int, float]]:
    """Per keep: (steps, the sum of their sample fractions ``samples / full_batch``)."""
    shares: dict[float, tuple[int, float]] = {}
    for (keep, size), count in counts.items():
        steps, fractions = shares.get(keep, (0, 0.0))
        shares[keep] = (steps + count, fractions + count * size / full_batch)
    return shares


def predict_time_energy(
    plan_shares: dict[float, tuple[int, float]],
    steps: dict[float, Prices],
    evals: Prices,
    eval_batches: int,
    eval_fractions: float,
    constant_s: float,
    quantity: str,
) -> tuple[float, float, float]:
    """(total, low, high) of ``quantity`` (``time_s``, ``energy_j`` or a source) over a
    run's steps (``plan_shares`` per keep, priced by ``steps``) and evaluation batches,
    plus ``constant_s`` seconds without spread (time only); NaN without a figure."""
    parts = []
    for keep, (count, fractions) in plan_shares.items():
        prices = steps[keep]
        if quantity not in prices.fixed:
            return math.nan, math.nan, math.nan
        parts.append(scaled_part(prices.fixed[quantity], prices.scaled[quantity], count, fractions))
    if quantity not in evals.fixed:
        return math.nan, math.nan, math.nan
    fixed, scaled = evals.fixed[quantity], evals.scaled[quantity]
    parts.append(scaled_part(fixed, scaled, eval_batches, eval_fractions))
    if quantity == TIME:
        parts.append(Part(constant_s))
    return interval(parts)


def predict_run(
    plan: RunPlan,
    steps: dict[float, Prices],
    evals: Prices,
    extras: Extras,
    sources: list[str],
    intensity_g_per_kwh: float,
) -> dict[str, Any]:
    """The run's estimate.csv row (docs/estimate.md) from its plan and the prices of its
    keeps, its evaluation and its epochs' extras."""
    spec, epochs = plan.spec, plan.epochs
    shares = keep_shares(plan.counts, plan.full_batch)
    eval_batches = epochs * len(plan.val_sizes)
    eval_fractions = epochs * sum(plan.val_sizes) / evals.samples
    constant_s = epochs * extras.flops_s + flop_counts(plan) * extras.count_s
    args = (shares, steps, evals, eval_batches, eval_fractions, constant_s)
    time_s, time_low, time_high = predict_time_energy(*args, TIME)
    energy_j, energy_low, energy_high = predict_time_energy(*args, ENERGY)
    labels = {s: combine([*(steps[k].label(s) for k in shares), evals.label(s)]) for s in sources}
    provenance = combine_sources(labels.values())
    step_total = sum(plan.counts.values())
    mean_keep = sum(k * c for (k, _), c in plan.counts.items()) / step_total
    flops_forward = sum(step_flops(plan.ctx, k, n)[0] * c for (k, n), c in plan.counts.items())
    flops_backward = sum(step_flops(plan.ctx, k, n)[1] * c for (k, n), c in plan.counts.items())
    flops_eval = epochs * eval_flops(plan.ctx, spec)
    overhead_s = spec.energy.idle_s + epochs * extras.checkpoint_s
    row: dict[str, Any] = {
        "run_id": spec.run_id,
        "method_label": spec.label,
        "seed": spec.seed,
        "setup": setup_label(spec.setup),
        "epochs": epochs,
        "steps": step_total,
        "mean_keep": mean_keep,
        "time_s": time_s,
        "time_s_low": time_low,
        "time_s_high": time_high,
        "energy_j": energy_j,
        "energy_j_low": energy_low,
        "energy_j_high": energy_high,
        "provenance": provenance,
    }
    for source in sources:
        value = predict_time_energy(*args, source)[0]
        row[source_column(ENERGY, source)] = math.nan if labels[source] == UNAVAILABLE else value
        row[source_column(PROVENANCE, source)] = labels[source]
    row.update(
        emissions_kg=emissions_kg(energy_j, intensity_g_per_kwh),
        flops_forward=flops_forward,
        flops_backward=flops_backward,
        flops_eval=flops_eval,
        flops_total=flops_forward + flops_backward + flops_eval,
        overhead_s=overhead_s,
        wall_s=time_s + overhead_s,
        calibrated_steps=sum(steps[k].n for k in shares),
        note="; ".join(plan.notes()),
    )
    return row


def flop_counts(plan: RunPlan) -> int:
    """The analytic FLOP counts a run makes once, in its first epoch: one per distinct
    (keep, batch samples) of its steps, per training batch size at keep 1.0 (the dense
    backward it is compared with) and per validation batch size."""
    keys = {(keep, size) for keep, size in plan.counts}
    keys |= {(1.0, size) for _, size in plan.counts}
    keys |= {(1.0, size) for size in plan.val_sizes}
    return len(keys)


@dataclass(frozen=True)
class SweepEstimate:
    """What ``estimate_sweep`` predicted and what the calibration cost."""

    sweep_dir: Path
    runs: pd.DataFrame
    """estimate.csv: one row per planned run."""
    calibration: pd.DataFrame
    """calibration.csv: one row per priced keep (and per model's evaluation)."""
    time_s: float
    """Wall time of the whole estimate: building the runs, counting FLOPs, calibrating."""
    calibration_time_s: float
    """Seconds inside the calibration's metered windows."""
    energy_j: float
    """Joules of the calibration's metered windows, all sources with a figure."""
    provenance: str
    paths: tuple[Path, ...] = ()

    @property
    def share(self) -> float:
        """The estimate's wall time over the predicted training time of the sweep."""
        return self.time_s / float(self.runs["time_s"].sum())


def _calibrate(
    meter: EnergyMeter, plans: list[RunPlan], max_steps: int
) -> tuple[dict[str, Priced[Prices]], dict[str, Priced[Prices]], dict[str, Extras]]:
    """Every distinct step key priced once (:func:`.plans.price_each_once`), on the first
    run that has it, in the run's own epoch loop (:func:`.loop.measure_loop_steps`; isolated
    steps where the schedule gives the loop too few steps at the keep); then every distinct
    model's evaluation once, and its epoch extras (unmetered)."""

    def step(plan: RunPlan, keep: float | None) -> Prices:
        assert keep is not None  # a step key
        looped = measure_loop_steps(plan, meter, keep, max_steps)
        if looped is not None:
            return looped
        return measure_steps(plan, meter, plan.first_position(keep), max_steps)

    cooldown_s = plans[0].spec.energy.cooldown_s
    steps = price_each_once(meter, plans, step, cooldown_s=cooldown_s)
    evals = price_each_once(
        meter, plans, lambda plan, _: measure_eval(plan, meter), eval_keys, cooldown_s
    )
    extras = {key: measure_extras(priced.plan) for key, priced in evals.items()}
    return steps, evals, extras


def _calibration_row(c: Priced[Prices], sources: list[str]) -> dict[str, Any]:
    """The price's calibration.csv row (docs/estimate.md)."""
    p = c.measured
    mean, sd = p.mean_sd(TIME)
    row: dict[str, Any] = {
        "model": c.plan.spec.model.label,
        "batch_size": p.samples,
        "keep": c.keep if c.keep is not None else math.nan,
        "task": c.plan.spec.task.name,
        "unit": "eval_batch" if c.keep is None else "step",
        "calibrated_on": c.plan.spec.run_id,
        "runs": c.runs,
        "units": p.n,
        "stopped": p.stopped,
        "time_s_per_unit": mean,
        "time_s_per_unit_std": sd,
        "rse": p.rse(),
        "energy_j_per_unit": p.mean_sd(ENERGY)[0],
        "provenance": combine_sources(p.label(s) for s in sources),
    }
    for source in sources:
        row[source_column(ENERGY_PER_UNIT, source)] = p.mean_sd(source)[0]
        row[source_column(PROVENANCE, source)] = p.label(source)
    row["time_s"] = c.time_s
    row["energy_j"] = c.energy_j
    return row


def estimate_sweep(
    cfg: ProfileConfig,
    *,
    steps: int = DEFAULT_STEPS,
    out: Path | None = None,
    source: str = "config",
) -> SweepEstimate:
    """Calibrate on this machine and predict every planned run of ``cfg``; writes
    estimate.csv and calibration.csv into the sweep folder (``OUT/NAME``), where
    ``profile`` finds them and records each run's prediction in its meta.json.

    ``steps``: measured steps per priced keep at most (at least 2). With
    ``energy.phase_calibration`` the same meter also calibrates the phases of every price key
    not yet in the sweep's phase_calibration.csv (:mod:`.phases`), and estimate.csv gains
    each run's predicted ``energy_j_<phase>_calibrated``. Bad input (the config,
    ``steps``, an unwritable folder) is a UserError; nothing else in the folder changes."""
    if steps < 2:
        raise UserError(f"--steps: must be >= 2 (a spread needs two steps), got {steps}")
    t0 = time.perf_counter()
    sweep_dir = sweep_folder(cfg, out)
    try:  # an unwritable folder fails before the calibration, not after it
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{sweep_dir}: cannot write results here ({exc.strerror})") from None
    plans = plan_sweep(plan_runs(cfg, source))
    meter = build_meter(plans[0].spec.energy, plans[0].ctx.device)
    with meter:
        step_prices, eval_prices, extras = _calibrate(meter, plans, steps)
        phases = (
            calibrate_sweep_phases(plans, sweep_dir, meter=meter)[0]
            if cfg.energy.phase_calibration
            else None
        )
        sources = [s.name for s in meter.sources]
        intensity = meter.carbon_intensity_g_per_kwh
        cost = meter.totals("calibration")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for plan in plans:
        prices = {k: step_prices[key].measured for k, key in plan.price_keys.items()}
        evaluation = eval_prices[plan.eval_key].measured
        row = predict_run(plan, prices, evaluation, extras[plan.eval_key], sources, intensity)
        if phases is not None:
            row.update(predicted_phases(plan, phases.prices))
        rows.append({**row, "estimated_at": stamp})
    calibrations = [*step_prices.values(), *eval_prices.values()]
    table = pd.DataFrame([_calibration_row(c, sources) for c in calibrations])
    runs = pd.DataFrame(rows)
    assert cost is not None
    energy = cost.total_energy_j
    labels = [cost.provenance[s] for s in sources]
    paths = (
        atomic_write_csv(sweep_dir / ESTIMATE, runs),
        atomic_write_csv(sweep_dir / CALIBRATION, table),
        *(() if phases is None else (phases.path,)),
    )
    return SweepEstimate(
        sweep_dir,
        runs,
        table,
        time.perf_counter() - t0,
        cost.time_s,
        math.nan if energy is None else energy,
        combine_sources(labels),
        paths,
    )
