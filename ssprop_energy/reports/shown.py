"""Which columns each table of the HTML page shows, in which order: the runs, methods,
side-by-side, setups and phases tables, with each source's energy and provenance and the
task's primary metric beside the accuracy columns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from ..store import ENERGY, PROVENANCE, source_column


def with_sources(columns: Iterable[str], sources: Sequence[str]) -> list[str]:
    """Insert ``energy_j_<source>``/``provenance_<source>`` pairs after ``provenance``."""
    out = []
    for column in columns:
        out.append(column)
        if column == "provenance":
            for source in sources:
                out += [source_column(ENERGY, source), source_column(PROVENANCE, source)]
    return out


INFERENCE_SAVINGS = (
    "params_saving_pct",
    "inference_flops_saving_pct",
    "inference_energy_saving_pct_b1",
    "provenance_inference_energy_saving_b1",
    "inference_energy_saving_pct_btrain",
    "provenance_inference_energy_saving_btrain",
)

PREDICTION_COLUMNS = (
    "predicted_time_s",
    "prediction_error_time_pct",
    "predicted_energy_j",
    "prediction_error_energy_pct",
)
"""summary.csv's prediction columns, shown when some run has an estimate."""

RUN_COLUMNS = (
    "run",
    "sweep",
    "model",
    "dataset",
    "status",
    "epochs_done",
    "final_accuracy",
    "best_accuracy",
    "time_s",
    "energy_j",
    "provenance",
    "energy_j_above_idle",
    "emissions_kg",
    "flops_forward",
    "flops_backward",
    "flops_total",
    "mean_keep",
    *PREDICTION_COLUMNS,
    "baseline_run",
    "flops_backward_saving_pct",
    "time_saving_pct",
    "energy_saving_pct",
    "provenance_energy_saving",
    "emissions_saving_pct",
    "accuracy_change_points",
    "j_per_gflop_backward",
    "j_per_gflop_saved_backward",
    "comparison_note",
    "target_status",
    "energy_j_to_target",
    "time_s_to_target",
    "params",
    "inference_flops_per_sample",
    "inference_latency_ms_b1",
    "inference_energy_j_per_1000_b1",
    "provenance_inference_b1",
    "inference_latency_ms_btrain",
    "inference_energy_j_per_1000_btrain",
    "provenance_inference_btrain",
    *INFERENCE_SAVINGS,
)
METHOD_KEYS = ("method_label", "model", "dataset", "setup", "n_runs", "n_finished", "excluded")
METHOD_METRICS = (
    "final_accuracy",
    "best_accuracy",
    "epochs_done",
    "time_s",
    "energy_j",
    "provenance",
    "emissions_kg",
    "flops_forward",
    "flops_backward",
    "flops_total",
    "mean_keep",
    "flops_backward_saving_pct",
    "time_saving_pct",
    "energy_saving_pct",
    "provenance_energy_saving",
    "emissions_saving_pct",
    "accuracy_change_points",
    "j_per_gflop_forward",
    "j_per_gflop_backward",
    "j_per_gflop_eval",
    "j_per_gflop_saved_backward",
    "energy_j_to_target",
    "time_s_to_target",
)
SIDE_BY_SIDE_KEYS = ("method_label", "model", "dataset", "setup", "n_finished")
SIDE_BY_SIDE_METRICS = (
    "final_accuracy",
    "flops_total",
    "time_s",
    "energy_j",
    "provenance",
    "emissions_kg",
    "params",
    "inference_flops_per_sample",
    *(
        f"{column}_{batch}"
        for batch in ("b1", "btrain")
        for column in (
            "inference_latency_ms",
            "inference_time_s_per_1000",
            "inference_energy_j_per_1000",
            "provenance_inference",
        )
    ),
    *INFERENCE_SAVINGS,
)
SETUP_KEYS = (
    "method_label",
    "model",
    "dataset",
    "setup",
    "n_runs",
    "n_finished",
    "n_reached",
    "target_status",
    "rank",
)
SETUP_METRICS = (
    "energy_j_to_target",
    "provenance",
    "ratio_to_best",
    "time_s_to_target",
    "flops_total_to_target",
    "emissions_kg_to_target",
    "epochs_to_target",
    "final_accuracy",
    "worst_to_best_ratio",
)
PHASE_COLUMNS = (
    "run",
    "phase",
    "status",
    "time_s",
    "energy_j",
    "provenance",
    "energy_j_calibrated",
    "provenance_calibrated",
    "note_calibrated",
    "flops",
    "j_per_gflop",
)


PRIMARY_OF = {
    "final_accuracy": ("primary_metric", "final_primary"),
    "best_accuracy": ("best_primary",),
    "accuracy_change_points": ("primary_change_pct",),
}
"""The primary metric's columns that stand beside (or for) the accuracy columns."""


def with_primary(columns: Iterable[str], runs: pd.DataFrame, keys: bool = False) -> list[str]:
    """``columns`` with the primary metric's beside the accuracy columns when some run's
    task judges by another metric (a generation run's ``val_denoise_loss``), in their place
    when none judges by accuracy. ``keys``: a mean ± std table, whose metric name is not a
    figure (it goes to the keys)."""
    metrics = primary_metrics(runs)
    if metrics == {"accuracy"}:
        return list(columns)
    out = []
    for column in columns:
        if column in PRIMARY_OF and "accuracy" in metrics:
            out.append(column)
        out += [
            c for c in PRIMARY_OF.get(column, (column,)) if not (keys and c == "primary_metric")
        ]
    return out


def primary_metrics(runs: pd.DataFrame) -> set[str]:
    """The runs' primary metrics (accuracy for a store that does not say)."""
    return set(runs.get("primary_metric", pd.Series(dtype=str)).dropna()) or {"accuracy"}


def primary_key(runs: pd.DataFrame) -> list[str]:
    """``primary_metric`` as a key of a mean ± std table when some run's is not accuracy."""
    return [] if primary_metrics(runs) == {"accuracy"} else ["primary_metric"]
