"""One summary row per run, and the tidy epoch rows, from the store's run records.

Totals are sums over the run's epoch rows; a total with a missing cell is NaN (an incomplete
figure is never shown as if it were complete). Energy and time to a target accuracy come from
the cumulative epoch rows up to the first epoch whose validation accuracy reaches it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from ..errors import UserError
from ..provenance import UNAVAILABLE, check, combine, combine_sources
from ..store import (
    ENDED,
    ENERGY,
    EPOCHS,
    FINISHED,
    FLOPS_OF_PHASE,
    INFERENCE,
    PREDICTED,
    PROVENANCE,
    EstimateMeta,
    RunMeta,
    RunRecord,
    epoch_number,
    parse_source_column,
    setup_label,
    source_column,
)
from . import controlled

SUMMED_PREFIXES = ("time_s", "energy_j", "emissions_kg", "flops_", "steps")
CUMULATIVE = ("time_s", "energy_j", "emissions_kg", "flops_total")
TO_TARGET = ("energy_j", "time_s", "flops_total", "emissions_kg")
INFERENCE_MEASURES = ("latency_ms", "time_s_per_1000", "energy_j_per_1000")
"""inference.csv columns the summary shows at batch 1 (``_b1``) and the training batch size
(``_btrain``), as ``inference_<measure>_<batch>``, with ``provenance_inference_<batch>``."""


def epoch_numbers(epochs: pd.DataFrame, column: str) -> pd.Series:
    """An epoch column as numbers (NaN where a cell is not one; empty without the column)."""
    return pd.to_numeric(epochs.get(column, pd.Series(dtype=float)), errors="coerce")


def _last_and_best(values: pd.Series, higher: bool = True) -> tuple[float, float]:
    """The last value of an epoch column and its best (highest, or lowest when lower is
    better); NaN for both without epochs."""
    if not len(values):
        return math.nan, math.nan
    return float(values.iloc[-1]), float(values.max() if higher else values.min())


def sources_of(record: RunRecord) -> list[str]:
    """Energy sources named by the run's meta.json or its epoch columns, in first-seen order."""
    names = list(record.meta.energy.sources)
    for column in record.epochs.columns:
        parsed = parse_source_column(column)
        if parsed is not None and parsed[0] == PROVENANCE:
            names.append(parsed[2])
    return list(dict.fromkeys(names))


def column_total(epochs: pd.DataFrame, column: str) -> float:
    if column not in epochs or epochs.empty:
        return math.nan
    values = pd.to_numeric(epochs[column], errors="coerce")
    return float(values.sum(min_count=len(values)))


def _labels(cells: Any) -> list[object]:
    """Stored provenance cells; an empty cell is a part without a figure."""
    return [cell if isinstance(cell, str) and cell else UNAVAILABLE for cell in cells]


def _source_provenance(record: RunRecord, source: str) -> str:
    column = source_column(PROVENANCE, source)
    if column in record.epochs and not record.epochs.empty:
        return combine(_labels(record.epochs[column]))
    stored = record.meta.energy.sources.get(source)
    if stored is None or not record.epochs.empty:
        return UNAVAILABLE
    return stored.provenance


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float:
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator * scale


def _target_status(reached: bool, status: str) -> str:
    if reached:
        return "reached"
    return "not_reached" if status in ENDED else "unknown"


def _to_target(epochs: pd.DataFrame, target: float | None, status: str) -> dict[str, Any]:
    """Epochs, joules, seconds, FLOPs and emissions until validation accuracy >= target."""
    row: dict[str, Any] = {f"{c}_to_target": math.nan for c in TO_TARGET}
    row["epochs_to_target"] = math.nan
    if target is None:
        row["target_status"] = "no_target"
        return row
    accuracy = epoch_numbers(epochs, "accuracy")
    hits = [i for i, a in enumerate(accuracy) if a >= target]
    row["target_status"] = _target_status(bool(hits), status)
    if hits:
        upto = epochs.iloc[: hits[0] + 1]
        row["epochs_to_target"] = hits[0] + 1
        for column in TO_TARGET:
            row[f"{column}_to_target"] = column_total(upto, column)
    return row


def _primary(meta: RunMeta, epochs: pd.DataFrame) -> dict[str, Any]:
    """The task's primary metric (meta.json's ``primary_metric``): its name, direction, last
    and best value over the stored epochs."""
    metric, higher = meta.primary_metric, meta.higher_is_better
    final, best = _last_and_best(epoch_numbers(epochs, metric), higher)
    return {
        "primary_metric": metric,
        "primary_higher_is_better": higher,
        "final_primary": final,
        "best_primary": best,
    }


def config_name(section: object) -> str:
    """A config section's ``name`` (``resnet18``), or its compact JSON; ``-`` when absent."""
    if isinstance(section, dict) and "name" in section:
        return str(section["name"])
    return "-" if not section else json.dumps(section, sort_keys=True, default=str)


def match_key(meta: RunMeta) -> str:
    """Runs with equal keys are comparable: same seed, sweep point, model and data."""
    config = meta.run_config
    parts = [meta.seed, meta.setup, config.get("model"), config.get("data")]
    return json.dumps(parts, sort_keys=True, default=str)


def summarize_run(record: RunRecord, target: float | None) -> dict[str, Any]:
    """The summary row of one run (columns of summary.csv before the baseline comparison)."""
    meta, epochs = record.meta, record.epochs
    setup = dict(meta.setup)
    row: dict[str, Any] = {
        "sweep": meta.sweep,
        "run_id": record.run_id,
        "method": meta.method,
        "method_label": meta.method_label,
        "model": config_name(meta.run_config.get("model")),
        "dataset": config_name(meta.run_config.get("data")),
        "seed": meta.seed,
        "setup": setup_label(setup),
        **{f"setup_{k}": setup[k] for k in sorted(setup)},
        "status": record.status,
        "epochs_planned": meta.epochs_planned,
        "epochs_done": len(epochs),
        "stopped_at_target": meta.stopped_at_target,
        "target_accuracy": target,
    }
    row["final_accuracy"], row["best_accuracy"] = _last_and_best(epoch_numbers(epochs, "accuracy"))
    row.update(_primary(meta, epochs))
    row["final_val_loss"] = _last_and_best(epoch_numbers(epochs, "val_loss"))[0]
    for column in epochs.columns:
        if column.startswith(SUMMED_PREFIXES):
            row[column] = column_total(epochs, column)
    sources = sources_of(record)
    try:
        for source in sources:
            row.setdefault(source_column(ENERGY, source), math.nan)
            row[source_column(PROVENANCE, source)] = _source_provenance(record, source)
        row["provenance"] = combine_sources(row[source_column(PROVENANCE, s)] for s in sources)
    except ValueError as exc:
        raise UserError(f"{record.path / EPOCHS}: {exc}") from None
    for column in ("time_s", "energy_j", "emissions_kg", "flops_forward", "flops_backward"):
        row.setdefault(column, math.nan)
    row.setdefault("flops_total", math.nan)
    row["mean_keep"] = _mean_keep(epochs)
    planned = meta.mean_keep_planned
    row["mean_keep_planned"] = math.nan if planned is None else planned
    for phase, flops in FLOPS_OF_PHASE.items():
        row[f"j_per_gflop_{phase}"] = _ratio(
            row.get(f"energy_j_{phase}", math.nan), row.get(flops, math.nan), 1e9
        )
    idle = meta.energy.idle_power_w
    idle_w = [
        float(idle[s])
        for s in sources
        if s in idle and not math.isnan(row[source_column(ENERGY, s)])
    ]
    row["idle_power_w"] = sum(idle_w) if idle_w else math.nan
    row["energy_j_above_idle"] = row["energy_j"] - row["idle_power_w"] * row["time_s"]
    row.update(_inference(record))
    row.update(_prediction(meta, row, record.status))
    row.update(_to_target(epochs, target, record.status))
    row.update(controlled.run_columns(meta))
    row["path"] = str(record.path)
    return row


def _prediction(meta: RunMeta, row: dict[str, Any], status: str) -> dict[str, Any]:
    """The run's recorded estimate (``predicted_<figure>``, ``predicted_provenance``) and,
    for a finished run, how far it was from the actual time and energy:
    ``prediction_error_<time|energy>_pct`` = 100 * (predicted - actual) / actual."""
    estimate = meta.estimate or EstimateMeta()
    out: dict[str, Any] = {
        f"predicted_{name}": _number(getattr(estimate, name)) for name in PREDICTED
    }
    out["predicted_provenance"] = estimate.provenance or ""
    for quantity, column in (("time", "time_s"), ("energy", "energy_j")):
        actual = row[column] if status == FINISHED else math.nan
        error = _ratio(out[f"predicted_{column}"] - actual, actual, 100.0)
        out[f"prediction_error_{quantity}_pct"] = error
    return out


def _number(value: Any) -> float:
    """A recorded figure as a float; NaN when absent or not a number."""
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    )


def _mean_keep(epochs: pd.DataFrame) -> float:
    """Mean keep over training steps (epochs weighted by their step count)."""
    if "keep" not in epochs or epochs.empty:
        return math.nan
    keep = pd.to_numeric(epochs["keep"], errors="coerce")
    if "steps" in epochs:
        steps = pd.to_numeric(epochs["steps"], errors="coerce")
        return _ratio(float((keep * steps).sum(min_count=len(keep))), float(steps.sum()))
    return float(keep.mean(skipna=False))


def _train_batch(meta: RunMeta) -> int | None:
    """The run's training batch size (``run_config.data.batch_size``), None when absent."""
    data = meta.run_config.get("data") or {}
    size = data.get("batch_size") if isinstance(data, dict) else None
    return int(size) if isinstance(size, int | float) else None


def _first_number(cells: pd.Series) -> float:
    """The first cell as a number; NaN when it is empty or not a number."""
    return float(pd.to_numeric(cells, errors="coerce").iloc[0])


def _inference(record: RunRecord) -> dict[str, Any]:
    """Parameters, forward FLOPs per sample, and latency, time and energy per 1,000 samples
    at batch 1 and at the training batch size, from inference.csv (NaN without it)."""
    table = record.inference
    row: dict[str, Any] = {"params": math.nan, "inference_flops_per_sample": math.nan}
    if not table.empty:
        row["params"] = _first_number(table["params"])
        row["inference_flops_per_sample"] = _first_number(table["flops_forward_per_sample"])
    for suffix, batch in (("b1", 1), ("btrain", _train_batch(record.meta))):
        match = table[table["batch_size"] == batch] if not table.empty else table
        for measure in INFERENCE_MEASURES:
            value = _first_number(match[measure]) if len(match) else math.nan
            row[f"inference_{measure}_{suffix}"] = value
        try:
            label = check(match["provenance"].iloc[0]) if len(match) else ""
        except ValueError as exc:
            raise UserError(f"{record.path / INFERENCE}: {exc}") from None
        row[f"provenance_inference_{suffix}"] = label
    return row


def _identity(record: RunRecord, run: str) -> dict[str, Any]:
    meta = record.meta
    return {
        "run": run,
        "sweep": meta.sweep,
        "method": meta.method,
        "method_label": meta.method_label,
        "seed": meta.seed,
        "setup": setup_label(dict(meta.setup)),
        "status": record.status,
    }


def _with_identity(record: RunRecord, run: str, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the run's identity columns first, then ``run_id``."""
    identity = _identity(record, run)
    table = table.drop(columns=[c for c in identity if c in table])
    table.insert(0, "run_id", table.pop("run_id"))
    for position, (name, value) in enumerate(identity.items()):
        table.insert(position, name, value)
    return table


def tidy_inference(record: RunRecord, run: str) -> pd.DataFrame:
    """The run's inference.csv rows with its identity (rows of the report's inference.csv)."""
    if record.inference.empty:
        return record.inference
    return _with_identity(record, run, record.inference.assign(run_id=record.run_id))


def tidy_sampling(record: RunRecord, run: str) -> pd.DataFrame:
    """The run's sampling.csv rows with its identity (rows of the report's sampling.csv)."""
    if record.sampling.empty:
        return record.sampling
    return _with_identity(record, run, record.sampling.assign(run_id=record.run_id))


def tidy_gates(record: RunRecord, run: str) -> pd.DataFrame:
    """The run's gates.csv rows with its identity (rows of the report's gates.csv)."""
    if record.gates.empty:
        return record.gates
    return _with_identity(record, run, record.gates.assign(run_id=record.run_id))


def tidy_epochs(record: RunRecord, run: str) -> pd.DataFrame:
    """The run's epoch rows with its identity and cumulative totals (rows of epochs.csv)."""
    epochs = record.epochs.copy()
    if epochs.empty:
        return epochs
    if "run_id" not in epochs:
        epochs["run_id"] = record.run_id
    epochs = _with_identity(record, run, epochs)
    epochs["epoch"] = epoch_number(pd.to_numeric(epochs["epoch"]))
    sources = [c for c in epochs.columns if (parse_source_column(c) or ("",))[0] == PROVENANCE]
    try:
        epochs["provenance"] = [
            combine_sources(_labels(row)) for row in epochs[sources].to_numpy(dtype=object)
        ]
    except ValueError as exc:
        raise UserError(f"{record.path / EPOCHS}: {exc}") from None
    for column in CUMULATIVE:
        if column in epochs:
            epochs[f"{column}_cum"] = pd.to_numeric(epochs[column], errors="coerce").cumsum(
                skipna=False
            )
    return epochs
