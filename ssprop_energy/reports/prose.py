"""The report's words: the headline and highlights (one line per compared method and sweep
ranking) and the notes (failed, excluded, missing and mixed-provenance runs)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from ..provenance import ESTIMATED, UNAVAILABLE, is_mixed
from ..stats import LEVEL, TEST, Interval
from ..store import FINISHED, NO_SETUP, PROVENANCE, RunRecord, source_column
from . import controlled
from .aggregate import GROUP, SWEEP


def run_notes(records: list[RunRecord], names: list[str]) -> list[str]:
    """Why each failed run failed, and which runs were killed while running."""
    notes = []
    for record, name in zip(records, names, strict=True):
        if record.note is not None:
            notes.append(f"{name}: {record.note}")
        elif record.status == "failed":
            notes.append(f"{name}: failed: {record.meta.error or 'no error recorded'}")
    return notes


def missing_note(missing: pd.DataFrame, planned: int) -> list[str]:
    """The planned runs without a result: those not ended yet, and (apart) those that failed
    or are damaged, which have ended."""
    notes = []
    ended = missing["status"].isin(["failed", "damaged"])
    for rows, what in ((missing[~ended], "not ended yet"), (missing[ended], "failed or damaged")):
        if len(rows):
            runs = ", ".join(f"{r.run_id} ({r.status})" for r in rows.itertuples())
            notes.append(f"{len(rows)} of {planned} planned runs {what} (missing.csv): {runs}")
    return notes


CITE_CALIBRATED = (
    "phases.csv: cite energy_j_calibrated for the energy of a forward, backward or "
    "optimizer phase (differential: from blocks of steps long enough for the energy "
    "counter); energy_j is the phases' own windows, split by time where they are shorter "
    "than the counter's update period (provenance split), as if every phase drew the same power"
)
"""The report's note on which phase figure to cite, where a run has a phase calibration."""


def _pct(saving: float) -> str:
    """A saving as a percentage (positive: the method used less)."""
    return "n/a" if math.isnan(saving) else f"{saving:.0f}%"


def _points(change: float) -> str:
    return "n/a" if math.isnan(change) else f"{change:+.1f}"


def _pct_change(change: float) -> str:
    """A relative change in percent, signed (positive: the figure went up)."""
    return "n/a" if math.isnan(change) else f"{change:+.1f}%"


def _interval(row: pd.Series, column: str, show: Callable[[float], str], zero: str) -> str:
    """``95% CI 12% to 30%``, with ``zero`` when the interval contains 0; empty without one."""
    interval = Interval(row[f"{column}_mean"], row[f"{column}_ci_low"], row[f"{column}_ci_high"], 0)
    if not interval.exists:
        return ""
    text = f"{LEVEL:.0%} CI {show(interval.low)} to {show(interval.high)}"
    return f"{text}, {zero}" if interval.contains_zero else text


def _estimate_only(row: pd.Series, sources: Sequence[str]) -> bool:
    """True when the energy saving compares estimates only: every source with a figure is
    ``estimated`` (the TDP-based CPU model, whose joules follow the seconds)."""
    labels = {row.get(source_column(PROVENANCE, s), UNAVAILABLE) for s in sources}
    labels -= {UNAVAILABLE}
    return row["provenance_energy_saving"] == ESTIMATED and labels == {ESTIMATED}


def _method_line(row: pd.Series, baseline: str, sources: Sequence[str], busy: bool) -> str:
    where = "" if row["setup"] == NO_SETUP else f" at {row['setup']}"
    pairs = int(row["n_pairs"])
    time_ci = _interval(row, "time_saving_pct", _pct, "within noise")
    energy_ci = _interval(row, "energy_saving_pct", _pct, "within noise")
    energy_how = [str(row["provenance_energy_saving"]), energy_ci]
    if _estimate_only(row, sources):
        energy_how.append("a TDP-based estimate: by construction this is the time saving")
    seeds = f"{pairs} seed{'s' if pairs != 1 else ''}"
    how = (
        f"mean of {seeds}, {LEVEL:.0%} {TEST} intervals"
        if pairs > 1
        else f"{seeds}: no interval (it needs two or more)"
    )
    paired = controlled.headline(row)
    totals = "" if paired is None else f"{paired}; run totals (uncontrolled, whole runs): "
    line = (
        f"{row['method_label']}{where} vs {baseline}: {totals}saves "
        f"{_pct(row['flops_backward_saving_pct_mean'])} backward FLOPs, "
        f"{_pct(row['time_saving_pct_mean'])} time{_paren(time_ci)}, "
        f"{_pct(row['energy_saving_pct_mean'])} energy{_paren(*energy_how)}; "
        f"{_quality(row)}; {how}"
    )
    return f"{line}; measured on a busy machine: see the flags" if busy else line


def _quality(row: pd.Series) -> str:
    """The change of the task's primary metric: accuracy in points, any other metric in
    percent of the baseline's value, with which way is better."""
    metric = row.get("primary_metric", "accuracy")
    if metric == "accuracy" or "primary_change_pct_mean" not in row:
        ci = _interval(row, "accuracy_change_points", _points, "not significant")
        return f"accuracy {_points(row['accuracy_change_points_mean'])} points{_paren(ci)}"
    better = "higher" if row.get("primary_higher_is_better", True) else "lower"
    ci = _interval(row, "primary_change_pct", _pct_change, "not significant")
    shown = _pct_change(row["primary_change_pct_mean"])
    return f"{metric} {shown}{_paren(f'{better} is better', ci)}"


def _paren(*parts: str) -> str:
    text = "; ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _busy_groups(summary: pd.DataFrame) -> set[tuple[Any, ...]]:
    """The method groups (``GROUP`` values) with a flagged run, or a flagged baseline run."""
    flagged = set(summary.loc[summary["noise_flags"] != "", "run"])
    return {
        tuple(run[c] for c in GROUP)
        for _, run in summary.iterrows()
        if run["run"] in flagged or run["baseline_run"] in flagged
    }


def headlines(
    summary: pd.DataFrame,
    methods: pd.DataFrame,
    setups: pd.DataFrame,
    baseline: str,
    sources: Sequence[str],
) -> list[str]:
    if methods.empty or "energy_saving_pct_mean" not in methods:
        return [f"No run could be compared with the {baseline} baseline."]
    compared = methods[methods["n_pairs"] > 0].sort_values(
        "energy_saving_pct_mean", ascending=False, kind="stable", na_position="last"
    )
    busy = _busy_groups(summary)
    lines = [
        _method_line(row, baseline, sources, tuple(row[c] for c in GROUP) in busy)
        for _, row in compared.iterrows()
    ]
    if not lines:
        lines = [f"No finished run could be compared with a finished {baseline} run."]
    if "worst_to_best_ratio" not in setups:
        return lines
    ranked = setups[setups["worst_to_best_ratio"].notna()]
    for (label, *_), group in ranked.groupby(SWEEP, sort=False):
        if len(group) < 2:
            continue
        best = group.loc[group["rank"] == 1].iloc[0]
        lines.append(
            f"{label}: energy to target varies {group['worst_to_best_ratio'].iloc[0]:.2f}x "
            f"across {len(group)} setups that reached it; best: {best['setup']}"
        )
    return lines


def table_notes(summary: pd.DataFrame, methods: pd.DataFrame, setups: pd.DataFrame) -> list[str]:
    notes = []
    unfinished = summary[summary["status"] != FINISHED]
    for _, run in unfinished.iterrows():
        notes.append(
            f"excluded from means: {run['run']} ({run['status']}, {run['epochs_done']} epochs)"
        )
    if summary["params"].notna().any():
        unmeasured = summary[(summary["status"] == FINISHED) & summary["params"].isna()]
        notes += [
            f"{run}: no inference.csv, so its method's inference means are empty"
            for run in unmeasured["run"]
        ]
    missing = summary[summary["comparison_note"].str.startswith("no ")]
    notes += [f"{r['run']}: {r['comparison_note']}" for _, r in missing.iterrows()]
    for table, name in ((summary, "summary"), (methods, "methods"), (setups, "setups")):
        for column in (c for c in table.columns if c.startswith("provenance")):
            for index, label in table[column].items():
                if is_mixed(label):
                    who = (
                        table.at[index, "run"]
                        if "run" in table
                        else table.at[index, "method_label"]
                    )
                    notes.append(
                        f"{name}: {column} of {who} is {label}: figures of different provenance"
                    )
    return notes
