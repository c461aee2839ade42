"""The controlled comparison's figures (docs/controlled.md): per run from meta.json's
``comparison`` entry, per method pooled over its runs' block pairs, and the headline's words.

A pair's ratio is run / baseline per step. The saving is ``(1 - ratio) * 100``; its interval
is the geometric mean's t interval (``stats.ratio_interval``), so a saving's interval is
``(1 - high) * 100`` to ``(1 - low) * 100``. Pooling over runs uses every pair of every
finished run alike: the pooled mean and sample variance of the log ratios are rebuilt exactly
from each run's count, mean and standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..stats import (
    LEVEL,
    POWER,
    detectable_log_effect,
    pairs_needed,
    ratio_interval,
    t_interval,
)
from ..store import FINISHED, RunMeta

FIGURES = ("time", "energy")
EFFECT_PCT = 5.0
"""The effect (a saving of 5%) whose number of block pairs and seeds methods.csv states."""
RUN_COLUMNS = (
    "controlled_pairs",
    "controlled_stop",
    "controlled_baseline_run",
    *(f"{f}_log_ratio_controlled_{s}" for f in FIGURES for s in ("mean", "sd")),
    *(f"{f}_saving_controlled_pct{s}" for f in FIGURES for s in ("", "_ci_low", "_ci_high")),
)
"""summary.csv's controlled columns (per run); NaN or empty for a run without a comparison."""


def _saving(ratios: Sequence[float]) -> tuple[float, float, float, float, float]:
    """(saving %, low %, high %, mean log ratio, sd of the log ratios) of paired ratios."""
    interval = ratio_interval(ratios)
    mean = math.log(interval.ratio) if interval.ratio > 0 else math.nan
    return (
        (1.0 - interval.ratio) * 100.0,
        (1.0 - interval.high) * 100.0,
        (1.0 - interval.low) * 100.0,
        mean,
        interval.sd_log,
    )


def run_columns(meta: RunMeta) -> dict[str, Any]:
    """A run's controlled columns (``RUN_COLUMNS``) from its meta.json."""
    row: dict[str, Any] = dict.fromkeys(RUN_COLUMNS, math.nan)
    state = meta.comparison
    row["controlled_stop"] = "" if state is None else state.stop
    row["controlled_baseline_run"] = "" if state is None else state.baseline_run
    if state is None:
        return row
    row["controlled_pairs"] = state.pairs
    logs: dict[str, list[float | None]] = {
        "time": list(state.time_log_ratios),
        "energy": list(state.energy_log_ratios),
    }
    for figure, values in logs.items():
        if not values or any(v is None for v in values):
            continue
        saving, low, high, mean, sd = _saving([math.exp(v) for v in values if v is not None])
        row[f"{figure}_saving_controlled_pct"] = saving
        row[f"{figure}_saving_controlled_pct_ci_low"] = low
        row[f"{figure}_saving_controlled_pct_ci_high"] = high
        row[f"{figure}_log_ratio_controlled_mean"] = mean
        row[f"{figure}_log_ratio_controlled_sd"] = sd if len(values) > 1 else 0.0
    return row


METHOD_COLUMNS = (
    *(f"{f}_saving_controlled_pct{s}" for f in FIGURES for s in ("", "_ci_low", "_ci_high")),
    "controlled_pairs",
    "controlled_stop",
    *(f"{f}_controlled_mde_pct" for f in FIGURES),
    "controlled_pairs_for_5pct",
    "seeds_for_5pct",
    "time_saving_to_target_controlled_pct",
)
"""methods.csv's controlled columns (docs/reports.md)."""


def _pooled(runs: pd.DataFrame, figure: str) -> tuple[float, float, int]:
    """(mean, sample sd, n) of the log ratios of every pair of ``runs``; NaN where a run
    has pairs but no figure (no silent subset)."""
    counts = pd.to_numeric(runs["controlled_pairs"], errors="coerce").fillna(0)
    means = runs[f"{figure}_log_ratio_controlled_mean"]
    sds = runs[f"{figure}_log_ratio_controlled_sd"].fillna(0.0)
    n = int(counts.sum())
    if n == 0 or means[counts > 0].isna().any():
        return math.nan, math.nan, n
    mean = float((counts * means.fillna(0.0)).sum() / n)
    within = float(((counts - 1).clip(lower=0) * sds**2).sum())
    between = float((counts * (means.fillna(0.0) - mean) ** 2).sum())
    return mean, math.sqrt((within + between) / (n - 1)) if n > 1 else math.nan, n


def _interval(mean: float, sd: float, n: int) -> tuple[float, float, float]:
    """(saving %, low %, high %) from pooled log ratios."""
    if math.isnan(mean):
        return math.nan, math.nan, math.nan
    low, high = t_interval(mean, sd**2 / n, n - 1) if n > 1 else (math.nan, math.nan)
    return tuple((1.0 - math.exp(v)) * 100.0 for v in (mean, high, low))  # type: ignore[return-value]


def method_columns(group: pd.DataFrame, baselines: pd.DataFrame) -> dict[str, Any]:
    """One method group's controlled columns (``METHOD_COLUMNS``): its finished runs' pairs
    pooled; ``baselines``: the summary rows of their baseline runs (epochs to target)."""
    runs = group[(group["status"] == FINISHED) & (group["controlled_stop"] != "")]
    row: dict[str, Any] = dict.fromkeys(METHOD_COLUMNS, math.nan)
    row["controlled_stop"] = "; ".join(sorted(set(runs["controlled_stop"])))
    row["controlled_pairs"] = int(pd.to_numeric(runs["controlled_pairs"]).sum())
    effect = -math.log(1.0 - EFFECT_PCT / 100.0)
    for figure in FIGURES:
        mean, sd, n = _pooled(runs, figure)
        saving = _interval(mean, sd, n)
        for suffix, value in zip(("", "_ci_low", "_ci_high"), saving, strict=True):
            row[f"{figure}_saving_controlled_pct{suffix}"] = value
        mde = detectable_log_effect(sd, n)
        row[f"{figure}_controlled_mde_pct"] = (1.0 - math.exp(-mde)) * 100.0
        if figure == "time":
            row["controlled_pairs_for_5pct"] = pairs_needed(sd, effect) or math.nan
    totals = pd.to_numeric(group.loc[group["status"] == FINISHED, "time_saving_pct"])
    if totals.notna().sum() > 1:
        row["seeds_for_5pct"] = pairs_needed(float(totals.std()), EFFECT_PCT) or math.nan
    ratio = 1.0 - row["time_saving_controlled_pct"] / 100.0
    epochs = _mean(runs, "epochs_to_target") / _mean(baselines, "epochs_to_target")
    row["time_saving_to_target_controlled_pct"] = (1.0 - ratio * epochs) * 100.0
    return row


def _mean(rows: pd.DataFrame, column: str) -> float:
    if rows.empty or column not in rows:
        return math.nan
    return float(pd.to_numeric(rows[column], errors="coerce").mean(skipna=False))


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}%"


def _with_interval(row: pd.Series, figure: str) -> str:
    column = f"{figure}_saving_controlled_pct"
    low, high = row[f"{column}_ci_low"], row[f"{column}_ci_high"]
    text = f"{_pct(row[column])} {figure} per step"
    if math.isnan(low):
        return text
    zero = ", within noise" if low <= 0.0 <= high else ""
    return f"{text} ({LEVEL:.0%} CI {_pct(low)} to {_pct(high)}{zero})"


def headline(row: pd.Series) -> str | None:
    """The controlled saving's words for one methods.csv row; None without a comparison."""
    if not row.get("controlled_pairs", 0) or math.isnan(row["time_saving_controlled_pct"]):
        return None
    to_target = row["time_saving_to_target_controlled_pct"]
    target = "" if math.isnan(to_target) else f"; to the target, {_pct(to_target)} time"
    mde = row["time_controlled_mde_pct"]
    return (
        f"controlled (paired blocks inside the run, {int(row['controlled_pairs'])} pairs, "
        f"stopped by {row['controlled_stop']}): saves {_with_interval(row, 'time')}, "
        f"{_with_interval(row, 'energy')}; the same per epoch{target}; "
        f"detects {_pct(mde)} at {LEVEL:.0%} confidence and {POWER:.0%} power"
        f"{_needed(row)}; cite these, not the run totals"
    )


def _needed(row: pd.Series) -> str:
    """How many block pairs (and seeds of whole runs) would resolve a 5% time saving."""
    parts = [
        f"{int(row[column])} {what}"
        for column, what in (("controlled_pairs_for_5pct", "pairs"), ("seeds_for_5pct", "seeds"))
        if not math.isnan(row[column])
    ]
    return f"; a {EFFECT_PCT:g}% saving needs {' or '.join(parts)}" if parts else ""
