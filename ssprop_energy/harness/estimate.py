"""``estimate_sweep``: every planned run's time, energy, CO2 and FLOPs, predicted before
training from a short calibration on this machine (docs/estimate.md).

A run's training steps are counted per keep from its schedule's exact sequence of keeps
(``method.scheduler``), each step weighted by its batch's samples; each keep's step price,
each model's evaluation price and an epoch's extras come from :mod:`.calibrate`. A total's
interval adds the error of the calibrated means and the run's own step-to-step spread.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from ..data import Dataset
from ..errors import UserError
from ..flops.training import count_flops_at
from ..methods import Method
from ..profilers import EnergyMeter, emissions_kg
from ..provenance import UNAVAILABLE, combine, combine_sources
from ..sparse import DropScheduler
from ..store import CALIBRATION, ESTIMATE, atomic_write_csv, setup_label
from .build import RunContext, build_run, load_run_data, step_flops
from .calibrate import ENERGY, TIME, Prices, calibrate_eval, calibrate_steps, time_epoch_extras
from .config import ProfileConfig
from .recording import build_meter
from .runner import sweep_folder
from .runs import RunSpec, plan_runs
from .trainer import eval_flops

DEFAULT_STEPS = 20
"""Measured steps per keep at most (``--steps``)."""
INTERVAL = 0.95
"""Coverage of the ``_low``/``_high`` interval (two-sided, Student t)."""


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
    units = [f + ratio * s for f, s in zip(fixed, scaled, strict=True)]
    mean = sum(units) / n
    s2 = sum((u - mean) ** 2 for u in units) / (n - 1) if n > 1 else 0.0
    return Part(count * mean, count**2 * s2 / n + count * s2, n)


def interval(parts: Iterable[Part]) -> tuple[float, float, float]:
    """(total, low, high): the sum of ``parts`` and its ``INTERVAL`` Student t interval,
    with the standard deviations combined in quadrature and ``min(n) - 1`` degrees of
    freedom over the parts with a spread; ``low`` is never below 0 (a cost is not
    negative)."""
    parts = list(parts)
    total = sum(p.value for p in parts)
    spread = [p for p in parts if p.var > 0]
    if not spread:
        return total, total, total
    df = min(p.n for p in spread) - 1
    half = float(stats.t.ppf(0.5 + INTERVAL / 2, df)) * math.sqrt(sum(p.var for p in spread))
    return total, max(0.0, total - half), total + half


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


def keep_shares(counts: Counter[tuple[float, int]], unit: int) -> dict[float, tuple[int, float]]:
    """Per keep: (steps, the sum of their sample fractions ``samples / unit``)."""
    shares: dict[float, tuple[int, float]] = {}
    for (keep, size), count in counts.items():
        steps, fractions = shares.get(keep, (0, 0.0))
        shares[keep] = (steps + count, fractions + count * size / unit)
    return shares


@dataclass
class Extras:
    """What an epoch adds besides its steps and evaluation batches (seconds): counting the
    validation FLOPs (inside the epoch's ``time_s``) and saving the checkpoint (after it)."""

    flops_s: float
    checkpoint_s: float


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
    shares = keep_shares(plan.counts, plan.unit)
    eval_batches = epochs * len(plan.val_sizes)
    eval_fractions = epochs * sum(plan.val_sizes) / evals.samples
    constant_s = epochs * extras.flops_s
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
        row[f"energy_j_{source}"] = math.nan if labels[source] == UNAVAILABLE else value
        row[f"provenance_{source}"] = labels[source]
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


def _price_key(spec: RunSpec, ctx: RunContext, keep: float) -> str:
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
    plan.price_keys = {k: _price_key(spec, ctx, k) for k in keeps}
    plan.eval_key = _price_key(spec, ctx, 1.0)
    return plan


def _position(plan: RunPlan, keep: float) -> tuple[int, int]:
    """The first (epoch, step) at which the run's schedule uses ``keep``."""
    steps = len(batch_sizes(len(plan.ctx.data.x_train), plan.spec.data.batch_size))
    for epoch in range(plan.epochs):
        keeps = plan.ctx.method.scheduler.epoch_keeps(epoch, steps)
        if keep in keeps:
            return epoch, keeps.index(keep)
    raise ValueError(f"keep {keep} is not in the schedule")


@dataclass
class Calibrated:
    """One calibration: what it priced, on which run, its prices and what it cost."""

    plan: RunPlan
    keep: float | None  # None: the evaluation of the plan's model
    prices: Prices
    time_s: float
    energy_j: float
    extras: Extras | None = None
    runs: int = 0


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


def _metered(meter: EnergyMeter, plan: RunPlan, keep: float | None, measure: Any) -> Calibrated:
    """Run ``measure()`` in a ``calibration`` window; its prices and what it cost."""
    meter.begin("calibration")
    prices = measure()
    m = meter.end("calibration")
    energy = m.total_energy_j
    return Calibrated(plan, keep, prices, m.time_s, math.nan if energy is None else energy)


def _calibrate(
    meter: EnergyMeter, plans: list[RunPlan], max_steps: int
) -> tuple[dict[str, Calibrated], dict[str, Calibrated]]:
    """Price every distinct step key once, on the first run that has it, and every distinct
    model's evaluation and epoch extras once."""
    steps: dict[str, Calibrated] = {}
    evals: dict[str, Calibrated] = {}
    for plan in plans:
        ctx, spec = plan.ctx, plan.spec
        for keep, key in plan.price_keys.items():
            if key not in steps:
                position = _position(plan, keep)
                steps[key] = _metered(
                    meter,
                    plan,
                    keep,
                    lambda: calibrate_steps(ctx, spec, meter, position, max_steps),  # noqa: B023
                )
            steps[key].runs += 1
        if plan.eval_key not in evals:
            evals[plan.eval_key] = _metered(
                meter,
                plan,
                None,
                lambda: calibrate_eval(ctx, spec, meter),  # noqa: B023
            )
            evals[plan.eval_key].extras = Extras(*time_epoch_extras(ctx, spec))
        evals[plan.eval_key].runs += 1
    return steps, evals


def _calibration_row(c: Calibrated, sources: list[str]) -> dict[str, Any]:
    """The price's calibration.csv row (docs/estimate.md)."""
    p = c.prices
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
        row[f"energy_j_per_unit_{source}"] = p.mean_sd(source)[0]
        row[f"provenance_{source}"] = p.label(source)
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

    ``steps``: measured steps per priced keep at most (at least 2). Bad input (the config,
    ``steps``, an unwritable folder) is a UserError; nothing else in the folder changes."""
    if steps < 2:
        raise UserError(f"--steps: must be >= 2 (a spread needs two steps), got {steps}")
    t0 = time.perf_counter()
    sweep_dir = sweep_folder(cfg, out)
    try:  # an unwritable folder fails before the calibration, not after it
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{sweep_dir}: cannot write results here ({exc.strerror})") from None
    data: dict[str, Dataset] = {}
    plans = []
    for spec in plan_runs(cfg, source):
        key = spec.data.model_dump_json() + spec.task.model_dump_json()
        if key not in data:
            data[key] = load_run_data(spec)
        plans.append(plan_run(spec, data[key]))
    meter = build_meter(plans[0].spec.energy, plans[0].ctx.device)
    with meter:
        step_prices, eval_prices = _calibrate(meter, plans, steps)
        sources = [s.name for s in meter.sources]
        intensity = meter.carbon_intensity_g_per_kwh
        cost = meter.totals("calibration")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for plan in plans:
        evaluation = eval_prices[plan.eval_key]
        assert evaluation.extras is not None
        prices = {k: step_prices[key].prices for k, key in plan.price_keys.items()}
        row = predict_run(plan, prices, evaluation.prices, evaluation.extras, sources, intensity)
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
