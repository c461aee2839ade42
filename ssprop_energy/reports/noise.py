"""Was a run measured on a busy or noisy machine? Contention and noise figures, and flags.

From each run's epoch rows: the share of the machine's CPU time that other processes used
while it trained (``cpu_load_other``, recorded by the trainer), and the spread of the times
of identical epochs (same steps, same mean keep). Over runs: how far the idle power measured
before each run moved. A GPU whose clocks were held down by power or heat at an epoch's end
(``throttle_reasons_<source>``) is flagged too. A figure past its threshold is a flag: one
line, listed in the report's notes and by ``profile`` under the headline; so is a run's
faults while it was measured (meta.json's ``notes``: a source lost mid-run, a meter that
failed).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..store import THROTTLE, RunRecord, throttle_names
from .runs import epoch_numbers

BUSY_LOAD = 0.10
"""A run is on a busy machine when other processes used more than this share of the
machine's CPU time (all logical CPUs) over its epochs."""
EPOCH_TIME_CV = 0.20
"""Identical epochs vary too much when their times' coefficient of variation (sample std
over mean) is above this."""
IDLE_DRIFT = 0.25
"""A source's idle power drifted when its range over runs, ``(max - min) / median``, is
above this."""
BUSY, SPREAD, THROTTLED = "busy_machine", "epoch_time_spread", "throttled"
NOISE_COLUMNS = ("cpu_load_other", "cpu_load_other_max", "epoch_time_cv", "noise_flags")


def _load(epochs: pd.DataFrame) -> tuple[float, float]:
    """Other processes' CPU share over the run (epochs weighted by time) and in its busiest
    epoch; NaN when an epoch has no figure."""
    if epochs.empty or not {"cpu_load_other", "time_s"} <= set(epochs.columns):
        return math.nan, math.nan
    load, seconds = epoch_numbers(epochs, "cpu_load_other"), epoch_numbers(epochs, "time_s")
    if load.isna().any() or seconds.isna().any() or seconds.sum() <= 0:
        return math.nan, math.nan
    return float((load * seconds).sum() / seconds.sum()), float(load.max())


def _spread(epochs: pd.DataFrame) -> tuple[float, float, float]:
    """The largest coefficient of variation of epoch time among groups of identical epochs
    (at least two), with that group's shortest and longest time; NaN without such a group."""
    worst = (math.nan, math.nan, math.nan)
    if epochs.empty or not {"time_s", "steps", "keep"} <= set(epochs.columns):
        return worst
    frame = pd.DataFrame(
        {
            "time_s": epoch_numbers(epochs, "time_s"),
            "steps": epoch_numbers(epochs, "steps"),
            "keep": epoch_numbers(epochs, "keep").round(9),
        }
    ).dropna()
    for _, group in frame.groupby(["steps", "keep"]):
        times = group["time_s"]
        if len(times) < 2 or times.mean() <= 0:
            continue
        cv = float(times.std() / times.mean())
        if math.isnan(worst[0]) or cv > worst[0]:
            worst = (cv, float(times.min()), float(times.max()))
    return worst


def _throttled(epochs: pd.DataFrame) -> list[str]:
    """Per GPU whose clocks were held down by power or heat at some epoch's end
    (``throttle_reasons_<source>``; idle and the other benign reasons do not count): which
    epochs (from 1) and why."""
    found = []
    for column in (c for c in epochs.columns if c.startswith(f"{THROTTLE}_")):
        masks = epoch_numbers(epochs, column)
        hits = [(i + 1, int(m)) for i, m in enumerate(masks) if m == m and throttle_names(int(m))]
        if hits:
            reasons = sorted({n for _, m in hits for n in throttle_names(m)})
            epochs_text = ", ".join(str(e) for e, _ in hits)
            source = column.removeprefix(f"{THROTTLE}_")
            found.append(f"{source} in epoch(s) {epochs_text} ({', '.join(reasons)})")
    return found


def run_noise(record: RunRecord, name: str) -> tuple[dict[str, Any], list[str]]:
    """The run's noise columns (``NOISE_COLUMNS``) and one flag line per threshold passed."""
    load, load_max = _load(record.epochs)
    cv, shortest, longest = _spread(record.epochs)
    codes, flags = [], []
    if load > BUSY_LOAD:
        codes.append(BUSY)
        flags.append(
            f"busy machine: {name}: other processes used {load:.0%} of the CPU time while it "
            f"trained (busiest epoch {load_max:.0%}; threshold {BUSY_LOAD:.0%})"
        )
    if cv > EPOCH_TIME_CV:
        codes.append(SPREAD)
        flags.append(
            f"noisy epoch times: {name}: identical epochs took {shortest:.3g} to "
            f"{longest:.3g} s (coefficient of variation {cv:.2f}; threshold {EPOCH_TIME_CV:.2f})"
        )
    throttled = _throttled(record.epochs)
    if throttled:
        codes.append(THROTTLED)
        flags.append(f"throttled: {name}: " + "; ".join(throttled))
    faults = record.meta.notes
    if faults:
        flags.append(f"faults while measuring: {name}: " + "; ".join(str(f) for f in faults))
    if record.meta.method_notes:
        flags.append(f"method: {name}: " + "; ".join(record.meta.method_notes))
    columns = {
        "cpu_load_other": load,
        "cpu_load_other_max": load_max,
        "epoch_time_cv": cv,
        "noise_flags": "; ".join(codes),
    }
    return columns, flags


def idle_drift_flags(sources: pd.DataFrame) -> list[str]:
    """One flag per energy source whose idle power moved between runs (the energy sources
    table: ``idle_power_w_min``, ``_median``, ``_max`` over ``n_idle`` runs)."""
    flags = []
    for _, row in sources.iterrows():
        low, mid, high = (row[f"idle_power_w_{s}"] for s in ("min", "median", "max"))
        if row["n_idle"] < 2 or not mid > 0:
            continue
        drift = (high - low) / mid
        if drift > IDLE_DRIFT:
            flags.append(
                f"idle drift: {row['source']} idled at {low:.3g} to {high:.3g} W over "
                f"{int(row['n_idle'])} runs ((max - min) / median {drift:.2f}; threshold "
                f"{IDLE_DRIFT:.2f}): other load came and went between runs"
            )
    return flags
