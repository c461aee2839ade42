"""Columns without a single value, named in the notes with the reason they are empty.

The CSV files keep a fixed set of columns (scripts read them by name), so an empty column is
not dropped; one note per file lists its empty columns, grouped by why they are empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..store import ENERGY, source_column
from .compare import SAVINGS

TARGET_COLUMNS = ("_to_target", "rank", "ratio_to_best", "worst_to_best_ratio")
INFERENCE_PREFIXES = ("inference_", "params", "provenance_inference")
INFERENCE_SAVINGS = tuple(c for c in SAVINGS if c.startswith(("inference", "params")))
STATISTICS = {
    "_ci_low": "fewer than two seeds compared with the baseline: an interval needs two",
    "_ci_high": "fewer than two seeds compared with the baseline: an interval needs two",
    "_std": "one finished run per group: a standard deviation needs two",
    "_mean": "",
}
"""Statistic suffixes of methods.csv and setups.csv, with why one is empty while its mean
is not."""
UNRANKED = (
    "no sweep point reached the target in every finished run (runs outside a sweep are not ranked)"
)
FAMILIES = ("_ci_low", "_ci_high", "_std")
"""Column suffixes shown as one ``*<suffix>`` entry (with a count) when several are empty."""


def _is_empty(column: pd.Series) -> bool:
    cells = column if pd.api.types.is_numeric_dtype(column) else column.replace("", pd.NA)
    return bool(cells.isna().all())


def _reason(column: str, sources: dict[str, str], target: float | None) -> tuple[str, str]:
    """(reason, shown name) of an empty column of run figures; the shown name collapses a
    family of columns."""
    for source, why in sources.items():
        if column.endswith(f"_{source}") or f"_{source}_" in column:
            return f"source {source} has no figure in any run: {why}", f"*_{source}"
    if column == "excluded":
        return "no run was left out of a mean", column
    if column.startswith("rank_energy_imbalance_pct"):
        return "no distributed run has two ranks with an energy figure", column
    if column.startswith(INFERENCE_PREFIXES) or column.startswith(INFERENCE_SAVINGS):
        return "no run has an inference.csv", "params*, inference_*"
    if column == "target_accuracy" or any(part in column for part in TARGET_COLUMNS):
        shown = "*_to_target*" if "_to_target" in column else column
        if target is None:
            return "no target accuracy", shown
        if shown == column:  # the ranking
            return UNRANKED, shown
        return "no run reached the target", shown
    if column.startswith(("predicted_", "prediction_error_")):
        return "no run was estimated before training", "predicted_*, prediction_*"
    if column.startswith(("cpu_load_other", "cpu_s_")):
        return "no run recorded CPU contention: no cpu_load_other in epochs.csv", column
    if column.endswith(("_saving_pct", "_change_points")):
        return "no run was compared with a finished baseline", column
    return "no run has this figure", column


def _group_reason(
    column: str, table: pd.DataFrame, sources: dict[str, str], target: float | None
) -> tuple[str, str]:
    """The reason of an empty ``_mean``, ``_std`` or ``_ci_*`` column: its figure's own
    reason when the figure has no mean either, else too few runs for the statistic."""
    for suffix, why in STATISTICS.items():
        if column.endswith(suffix):
            base = column.removesuffix(suffix)
            mean = table.get(f"{base}_mean")
            if why and mean is not None and not _is_empty(mean):
                return why, column
            reason, shown = _reason(base, sources, target)
            return reason, shown if "*" in shown else f"{base}_*"
    return _reason(column, sources, target)


def _shown(names: list[str]) -> str:
    """The names, with three or more of one family (``_std``, ...) as ``*_std (N)``."""
    out: list[str] = []
    for suffix in FAMILIES:
        family = [n for n in names if n.endswith(suffix) and not n.startswith("*")]
        if len(family) >= 3:
            names = [n for n in names if n not in family]
            out.append(f"*{suffix} ({len(family)} columns)")
    return ", ".join(dict.fromkeys([*names, *out]))


def empty_column_notes(
    tables: dict[str, pd.DataFrame],
    unavailable: dict[str, str],
    target: float | None,
) -> list[str]:
    """One note per table (by file name) naming its empty columns and why they are empty.

    ``unavailable``: sources without a figure in any run, with the reason the store gives."""
    notes = []
    for name, table in tables.items():
        groups: dict[str, list[str]] = {}
        for column in table.columns:
            if _is_empty(table[column]):
                reason, shown = _group_reason(column, table, unavailable, target)
                groups.setdefault(reason, []).append(shown)
        if groups:
            parts = [f"{_shown(cols)} ({reason})" for reason, cols in groups.items()]
            notes.append(f"{name}: empty columns: " + "; ".join(parts))
    return notes


def sources_without_figures(
    epochs: pd.DataFrame, energy_sources: pd.DataFrame, sources: Sequence[str]
) -> dict[str, str]:
    """Sources whose ``energy_j_<source>`` is empty in every epoch row, with the reason the
    runs' meta.json gives (or ``unavailable``)."""
    reasons = {}
    for source in sources:
        column = source_column(ENERGY, source)
        if column in epochs and not _is_empty(epochs[column]):
            continue
        why = ""
        if len(energy_sources):
            rows = energy_sources[energy_sources["source"] == source]
            why = next((r for r in rows["reason"] if r), "")
        reasons[source] = why or "unavailable"
    return reasons
