"""phases.csv: one row per run and phase (seconds, joules in all and per source, FLOPs,
J/GFLOP), and the figures of a run's differential phase calibration beside them."""

from __future__ import annotations

import math

import pandas as pd

from ..provenance import UNAVAILABLE, combine
from ..store import (
    ENERGY,
    FLOPS_OF_PHASE,
    PHASES,
    PROVENANCE,
    PhaseCalibrationMeta,
    PhasePriceMeta,
    RunRecord,
    source_column,
)
from .runs import column_total

CALIBRATED_COLUMNS = ("energy_j_calibrated", "provenance_calibrated", "note_calibrated")
"""phases.csv's columns from a run's differential phase calibration (meta.json's
``phase_calibration``), beside the windowed ``energy_j``."""


def calibrated_phases(record: RunRecord) -> dict[str, tuple[float, str, str]]:
    """Per calibrated phase, (joules, provenance, note) over the run's stored epochs: each
    keep's calibrated joules per step times the steps the run took at that keep (its
    planned steps per epoch and keep, over the epochs in epochs.csv). Empty without a
    calibration. A phase without a figure at some keep (within noise, no energy source)
    has none, and the note says why; so has every phase when the planned steps disagree
    with the stored ``steps``."""
    entry = record.meta.phase_calibration
    if entry is None or not (entry.prices or entry.steps):
        return {}
    return _calibrated(entry, record.epochs)


def _calibrated(
    entry: PhaseCalibrationMeta, stored: pd.DataFrame
) -> dict[str, tuple[float, str, str]]:
    """:func:`calibrated_phases` of one meta.json entry and the run's epoch rows."""
    epochs = {int(e) for e in stored["epoch"]} if "epoch" in stored else set()
    counts: dict[float, int] = {}
    for epoch, keep, steps in entry.steps:
        if epoch in epochs:
            counts[keep] = counts.get(keep, 0) + steps
    prices: dict[str, dict[float, PhasePriceMeta]] = {}
    for price in entry.prices:
        prices.setdefault(price.phase, {})[price.keep] = price
    taken = column_total(stored, "steps")
    if not epochs or sum(counts.values()) != taken:
        note = "no stored epoch" if not epochs else "the stored steps differ from the plan"
        return {phase: (math.nan, UNAVAILABLE, note) for phase in prices}
    result: dict[str, tuple[float, str, str]] = {}
    for phase, at_keep in prices.items():
        used = [(k, n, at_keep.get(k)) for k, n in counts.items() if n]
        missing = [
            f"keep {k}: {p.note if p else 'not calibrated'}"
            for k, _, p in used
            if p is None or p.energy_j_per_step is None
        ]
        if missing:
            result[phase] = (math.nan, UNAVAILABLE, "; ".join(missing))
            continue
        joules = sum(n * (p.energy_j_per_step or 0.0) for _, n, p in used if p)
        result[phase] = (joules, combine(p.provenance for _, _, p in used if p), "")
    return result


def phase_rows(
    summary: pd.DataFrame,
    sources: list[str],
    calibrated: list[dict[str, tuple[float, str, str]]] | None = None,
) -> pd.DataFrame:
    """One row per run and phase: seconds, joules (total and per source), FLOPs, J/GFLOP;
    with ``calibrated`` (per run, :func:`calibrated_phases`) where any run has it, the
    ``CALIBRATED_COLUMNS`` too."""
    figures = calibrated if calibrated and any(calibrated) else None
    rows = []
    for index, (_, run) in enumerate(summary.iterrows()):
        for phase in PHASES:
            if f"time_s_{phase}" not in run and f"energy_j_{phase}" not in run:
                continue
            flops = run.get(FLOPS_OF_PHASE.get(phase, ""), math.nan)
            row = {
                "run": run["run"],
                "method_label": run["method_label"],
                "seed": run["seed"],
                "setup": run["setup"],
                "status": run["status"],
                "phase": phase,
                "time_s": run.get(f"time_s_{phase}", math.nan),
                "energy_j": run.get(f"energy_j_{phase}", math.nan),
                "provenance": run["provenance"],
                "flops": flops,
                "j_per_gflop": run.get(f"j_per_gflop_{phase}", math.nan),
            }
            if figures is not None:
                figure = figures[index].get(phase, (math.nan, UNAVAILABLE, ""))
                row.update(zip(CALIBRATED_COLUMNS, figure, strict=True))
            for source in sources:
                column = source_column(ENERGY, source, phase)
                row[source_column(ENERGY, source)] = run.get(column, math.nan)
                label = source_column(PROVENANCE, source)
                row[label] = run.get(label, UNAVAILABLE)
            rows.append(row)
    return pd.DataFrame(rows)
