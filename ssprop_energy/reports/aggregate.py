"""Means over seeds: one row per method (and sweep point), and the ranking of sweep points.

Only ``finished`` runs enter a mean; the others are counted and named in ``excluded``. A mean
is taken only when every included run has the figure (no silent subset), and provenance
labels that differ between runs become ``mixed: ...``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..provenance import across_runs
from ..stats import paired_interval
from ..store import FINISHED, NO_SETUP
from .compare import CHANGES, RELATIVE_CHANGES, SAVINGS
from .controlled import RUN_COLUMNS, method_columns
from .runs import TO_TARGET

GROUP = ["method", "method_label", "model", "dataset", "setup"]
SWEEP = ["method_label", "model", "dataset"]
NOT_METRICS = {"seed", "epochs_planned", "target_accuracy", *RUN_COLUMNS}
PRIMARY = ("primary_metric", "primary_higher_is_better")
"""The task's primary metric and its direction: one per method group (one task)."""
PAIRED = (*SAVINGS, *CHANGES, *RELATIVE_CHANGES)
"""Per-seed differences against the baseline: their mean gets a confidence interval
(``<column>_ci_low``, ``<column>_ci_high``; :mod:`.stats`)."""


def metric_columns(summary: pd.DataFrame) -> list[str]:
    """Numeric summary columns that are measurements, in summary order."""
    return [
        c
        for c in summary.columns
        if c not in NOT_METRICS
        and not c.startswith("setup_")
        and pd.api.types.is_numeric_dtype(summary[c])
        and not pd.api.types.is_bool_dtype(summary[c])
    ]


def _identity(group: pd.DataFrame) -> dict[str, Any]:
    first = group.iloc[0]
    row = {c: first[c] for c in GROUP}
    row.update({c: first[c] for c in group.columns if c.startswith("setup_")})
    row.update({c: first[c] for c in PRIMARY if c in group.columns})
    finished = group["status"] == FINISHED
    row["n_runs"] = len(group)
    row["n_finished"] = int(finished.sum())
    row["n_excluded"] = int((~finished).sum())
    row["excluded"] = "; ".join(
        f"{r} ({s})"
        for r, s in zip(group["run"][~finished], group["status"][~finished], strict=True)
    )
    return row


def _mean_std(values: pd.Series) -> tuple[float, float]:
    if values.empty:
        return math.nan, math.nan
    numbers = pd.to_numeric(values, errors="coerce")
    return float(numbers.mean(skipna=False)), float(numbers.std(skipna=False))


def method_table(summary: pd.DataFrame) -> pd.DataFrame:
    """methods.csv: per method and sweep point, ``<metric>_mean``/``_std`` over finished runs,
    ``n_pairs`` (finished runs compared with a finished baseline) and the paired interval of
    every saving and change."""
    metrics = set(metric_columns(summary))
    rows = []
    for _, group in summary.groupby(GROUP, sort=False, dropna=False):
        row = _identity(group)
        included = group[group["status"] == FINISHED]
        row["n_pairs"] = int((included["comparison_note"] == "compared").sum())
        for column in summary.columns:
            if column in metrics:
                row[f"{column}_mean"], row[f"{column}_std"] = _mean_std(included[column])
                if column in PAIRED:
                    interval = paired_interval(pd.to_numeric(included[column], errors="coerce"))
                    row[f"{column}_ci_low"], row[f"{column}_ci_high"] = interval.low, interval.high
            elif column.startswith("provenance"):
                row[column] = across_runs(included[column]) if len(included) else ""
        if "controlled_stop" in group:
            baselines = summary[summary["run"].isin(group["baseline_run"])]
            row.update(method_columns(group, baselines))
        rows.append(row)
    return pd.DataFrame(rows)


def _setup_status(n_finished: int, n_reached: int, has_target: bool) -> str:
    if not has_target:
        return "no_target"
    if n_finished == 0:
        return "incomplete"
    if n_reached == n_finished:
        return "reached"
    return "not_reached" if n_reached == 0 else "partial"


def setup_table(summary: pd.DataFrame) -> pd.DataFrame:
    """setups.csv: per method and sweep point, the cost of reaching the target, ranked.

    ``rank`` (1 = least energy) and ``ratio_to_best`` compare the sweep points (runs outside a
    sweep, setup ``-``, are listed but not ranked) of one method
    (and model and data set) that reached the target in every finished run;
    ``worst_to_best_ratio`` is the largest ``ratio_to_best`` among them.
    Points that never reached it keep empty figures, never zero.
    """
    rows = []
    for _, group in summary.groupby(GROUP, sort=False, dropna=False):
        row = _identity(group)
        included = group[group["status"] == FINISHED]
        reached = included["target_status"] == "reached"
        has_target = bool((group["target_status"] != "no_target").any())
        row["n_reached"] = int(reached.sum())
        row["target_status"] = _setup_status(len(included), row["n_reached"], has_target)
        complete = row["target_status"] == "reached"
        for column in (*(f"{c}_to_target" for c in TO_TARGET), "epochs_to_target"):
            mean, std = _mean_std(included[column]) if complete else (math.nan, math.nan)
            row[f"{column}_mean"], row[f"{column}_std"] = mean, std
        row["provenance"] = across_runs(included["provenance"]) if len(included) else ""
        row["final_accuracy_mean"], row["final_accuracy_std"] = _mean_std(
            included["final_accuracy"]
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return _rank(table)


def _rank(table: pd.DataFrame) -> pd.DataFrame:
    energy = table["energy_j_to_target_mean"]
    sweep_point = table["setup"] != NO_SETUP
    rankable = (table["target_status"] == "reached") & energy.notna() & sweep_point
    table["rank"] = pd.Series(pd.NA, index=table.index, dtype="Int64")
    table["ratio_to_best"] = math.nan
    table["worst_to_best_ratio"] = math.nan
    for _, group in table[rankable].groupby(SWEEP, sort=False):
        best = group["energy_j_to_target_mean"].min()
        ratio = group["energy_j_to_target_mean"] / best
        table.loc[group.index, "rank"] = (
            group["energy_j_to_target_mean"].rank(method="min").astype(int)
        )
        table.loc[group.index, "ratio_to_best"] = ratio if best > 0 else math.nan
        table.loc[group.index, "worst_to_best_ratio"] = ratio.max() if best > 0 else math.nan
    return table
