"""Each run against its baseline: the baseline-method run at the same seed and sweep point.

Savings are ``(baseline - run) / baseline * 100`` (positive = the run used less); accuracy
change is ``(run - baseline) * 100`` points; the primary metric's change is relative,
``(run - baseline) / |baseline| * 100`` (positive = the metric went up, whichever way is
better). Both runs must be ``finished``; otherwise the
comparison cells stay empty and ``comparison_note`` says why.
"""

from __future__ import annotations

import math

import pandas as pd

from ..provenance import pairwise
from ..store import FINISHED

SAVINGS = {
    "flops_saving_pct": "flops_total",
    "flops_backward_saving_pct": "flops_backward",
    "time_saving_pct": "time_s",
    "energy_saving_pct": "energy_j",
    "energy_backward_saving_pct": "energy_j_backward",
    "emissions_saving_pct": "emissions_kg",
    "params_saving_pct": "params",
    "inference_flops_saving_pct": "inference_flops_per_sample",
    "inference_energy_saving_pct_b1": "inference_energy_j_per_1000_b1",
    "inference_energy_saving_pct_btrain": "inference_energy_j_per_1000_btrain",
}
ENERGY_SAVING_PROVENANCE = {
    "provenance_energy_saving": "provenance",
    "provenance_inference_energy_saving_b1": "provenance_inference_b1",
    "provenance_inference_energy_saving_btrain": "provenance_inference_btrain",
}
"""The label of each energy saving: the run's and the baseline's labels of the figure."""
CHANGES = {
    "accuracy_change_points": "final_accuracy",
    "best_accuracy_change_points": "best_accuracy",
}
RELATIVE_CHANGES = {"primary_change_pct": "final_primary"}
COMPARISON_COLUMNS = (
    "baseline_run",
    *SAVINGS,
    *CHANGES,
    *RELATIVE_CHANGES,
    "j_per_gflop_saved_backward",
    *ENERGY_SAVING_PROVENANCE,
    "comparison_note",
)


def is_baseline(method: str, method_label: str, baseline: str) -> bool:
    """A run is a baseline when its method or its method label is ``baseline``."""
    return baseline in (method, method_label)


def _saving(run: float, base: float) -> float:
    if math.isnan(run) or math.isnan(base) or base == 0:
        return math.nan
    return (base - run) / base * 100.0


def _relative_change(run: float, base: float) -> float:
    if math.isnan(run) or math.isnan(base) or base == 0:
        return math.nan
    return (run - base) / abs(base) * 100.0


def _find_baseline(run: pd.Series, candidates: pd.DataFrame) -> pd.Series | None:
    same = candidates[candidates["match_key"] == run["match_key"]]
    if same.empty:
        return None
    finished = same[same["status"] == FINISHED]
    return (finished if not finished.empty else same).iloc[0]


def _compare(run: pd.Series, base: pd.Series | None, baseline: str) -> dict[str, object]:
    row: dict[str, object] = {c: math.nan for c in COMPARISON_COLUMNS}
    row["baseline_run"] = "" if base is None else base["run"]
    row.update(dict.fromkeys(ENERGY_SAVING_PROVENANCE, ""))
    if run["is_baseline"]:
        row["comparison_note"] = "baseline"
    elif base is None:
        row["comparison_note"] = f"no {baseline} run at this seed and setup"
    elif run["status"] != FINISHED:
        row["comparison_note"] = f"run {run['status']}: not compared"
    elif base["status"] != FINISHED:
        row["comparison_note"] = f"baseline {base['status']}: not compared"
    else:
        row["comparison_note"] = "compared"
        for name, column in SAVINGS.items():
            row[name] = _saving(run.get(column, math.nan), base.get(column, math.nan))
        for name, column in CHANGES.items():
            row[name] = (run[column] - base[column]) * 100.0
        for name, column in RELATIVE_CHANGES.items():
            row[name] = _relative_change(run[column], base[column])
        saved_j = base.get("energy_j_backward", math.nan) - run.get("energy_j_backward", math.nan)
        saved_flops = base["flops_backward"] - run["flops_backward"]
        if saved_flops > 0:
            row["j_per_gflop_saved_backward"] = saved_j / saved_flops * 1e9
        for name, column in ENERGY_SAVING_PROVENANCE.items():
            labels = run.get(column, ""), base.get(column, "")
            row[name] = pairwise(*labels) if all(labels) else ""
    return row


def add_comparisons(summary: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """``summary`` (with ``run``, ``match_key``) plus ``is_baseline`` and the comparison columns."""
    summary = summary.copy()
    summary["is_baseline"] = [
        is_baseline(m, label, baseline)
        for m, label in zip(summary["method"], summary["method_label"], strict=True)
    ]
    candidates = summary[summary["is_baseline"]]
    rows = [
        _compare(run, _find_baseline(run, candidates), baseline) for _, run in summary.iterrows()
    ]
    compared = pd.DataFrame(rows, index=summary.index, columns=list(COMPARISON_COLUMNS))
    return pd.concat([summary, compared], axis=1)
