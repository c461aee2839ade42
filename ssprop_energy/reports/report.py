"""``build_report``: the store's runs as comparison tables, with the report's words; a
``Report`` shows itself in a notebook.

A report reads only the results store (docs/store.md), so it can be rebuilt at any time,
also from an interrupted sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..store import ENERGY, NO_SETUP, PROVENANCE, parse_source_column, source_column
from .aggregate import method_table, setup_table
from .compare import add_comparisons
from .contents import ReportContents
from .empty import empty_column_notes, sources_without_figures
from .html import notebook_html
from .load import (
    energy_sources_table,
    environment_table,
    load_records,
    missing_runs,
    planned_count,
    power_tables,
    target_of,
    tidy,
)
from .noise import idle_drift_flags, run_noise
from .phases import calibrated_phases, phase_rows
from .prose import CITE_CALIBRATED, headlines, missing_note, run_notes, table_notes
from .ranks import rank_notes, rank_rows, rank_summary
from .runs import (
    match_key,
    sources_of,
    summarize_run,
    tidy_epochs,
    tidy_gates,
    tidy_inference,
    tidy_sampling,
)
from .samples import final_grid


@dataclass(frozen=True)
class Report(ReportContents):
    """The tables of a report (pandas DataFrames, one per CSV file) and its headline
    (``ReportContents``), shown in a notebook as its headline, notes and methods table."""

    def _repr_html_(self) -> str:
        """Headline, highlights, notes and the methods table (for Jupyter)."""
        return notebook_html(self)


def _run_names(summary: pd.DataFrame) -> list[str]:
    """Readable unique run names: method label, seed and setup; sweep and id when needed."""
    names = [
        f"{label} seed={seed}" + ("" if setup == NO_SETUP else f" {setup}")
        for label, seed, setup in zip(
            summary["method_label"], summary["seed"], summary["setup"], strict=True
        )
    ]
    if len(set(names)) < len(names):
        names = [f"{sweep}: {n}" for sweep, n in zip(summary["sweep"], names, strict=True)]
    if len(set(names)) < len(names):
        names = [f"{n} [{rid}]" for n, rid in zip(names, summary["run_id"], strict=True)]
    return names


def _beside(columns: list[str]) -> list[str]:
    """Column order with each provenance column right after the energy column it labels."""
    labels = {}
    for column in columns:
        parsed = parse_source_column(column)
        if parsed is not None and parsed[0] == PROVENANCE and parsed[1] is None:
            labels[column] = source_column(ENERGY, parsed[2])
    labels |= {"provenance": "energy_j", "provenance_energy_saving": "energy_saving_pct"}
    for batch in ("b1", "btrain"):
        labels[f"provenance_inference_{batch}"] = f"inference_energy_j_per_1000_{batch}"
        labels[f"provenance_inference_energy_saving_{batch}"] = (
            f"inference_energy_saving_pct_{batch}"
        )
    ordered = list(columns)
    for label, energy in labels.items():
        anchors = (f"{energy}_ci_high", f"{energy}_std", energy)
        anchor = next((a for a in anchors if a in ordered), None)
        if label in ordered and anchor is not None:
            ordered.remove(label)
            ordered.insert(ordered.index(anchor) + 1, label)
    return ordered


def build_report(
    run_dirs: Sequence[Path | str], target_accuracy: float | None = None, baseline: str = "dense"
) -> Report:
    """Read sweep or run folders from the store and build the comparison tables.

    ``target_accuracy`` (0 to 1) overrides the runs' own target; ``baseline`` is the method
    (or method label) every other run is compared with, at the same seed and sweep point.
    """
    records, damaged, statuses = load_records(run_dirs)
    target, notes = target_of(records, target_accuracy)
    notes += damaged
    missing = missing_runs(run_dirs, statuses)
    notes += missing_note(missing, planned_count(run_dirs))
    summary = pd.DataFrame([summarize_run(r, target) for r in records])
    if any(r.meta.distributed is not None for r in records):
        summary = summary.assign(**pd.DataFrame([rank_summary(r) for r in records]))
    names = _run_names(summary)
    summary.insert(0, "run", names)
    summary["match_key"] = [match_key(r.meta) for r in records]
    noise = [run_noise(r, n) for r, n in zip(records, names, strict=True)]
    summary = pd.concat([summary, pd.DataFrame([columns for columns, _ in noise])], axis=1)
    summary = add_comparisons(summary, baseline).drop(columns="match_key")
    path = summary.pop("path")
    summary = summary[_beside(list(summary.columns))].assign(path=path)
    sources = tuple(dict.fromkeys(s for r in records for s in sources_of(r)))
    methods = method_table(summary)
    setups = setup_table(summary)
    epochs = tidy(tidy_epochs, records, names)
    energy_sources = energy_sources_table(records)
    lines = headlines(summary, methods, setups, baseline, sources)
    flags = [flag for _, run_flags in noise for flag in run_flags]
    flags += idle_drift_flags(energy_sources)
    notes += run_notes(records, names) + table_notes(summary, methods, setups)
    tables = {"summary.csv": summary, "methods.csv": methods, "setups.csv": setups}
    unavailable = sources_without_figures(epochs, energy_sources, sources)
    notes += empty_column_notes(tables, unavailable, target)
    if not summary["is_baseline"].any():
        notes.append(f"no {baseline} run found: nothing to compare against (see --baseline)")
    power, power_epochs, power_notes = power_tables(records, names)
    ranks = tidy(rank_rows, records, names)
    notes += rank_notes(ranks, summary) + power_notes + flags
    calibrated = [calibrated_phases(r) for r in records]
    if any(calibrated):
        notes.append(CITE_CALIBRATED)
    sweeps = list(dict.fromkeys(summary["sweep"]))
    return Report(
        runs=summary,
        methods=methods[_beside(list(methods.columns))],
        epochs=epochs[_beside(list(epochs.columns))],
        phases=phase_rows(summary, list(sources), calibrated),
        setups=setups,
        power=power,
        power_epochs=power_epochs,
        environment=environment_table(records, names),
        energy_sources=energy_sources,
        inference=tidy(tidy_inference, records, names),
        gates=tidy(tidy_gates, records, names),
        ranks=ranks,
        missing=missing,
        headline=lines[0],
        highlights=tuple(lines),
        notes=tuple(notes),
        flags=tuple(flags),
        damaged=tuple(damaged),
        title=", ".join(sweeps),
        baseline=baseline,
        target_accuracy=target,
        sources=sources,
        sampling=tidy(tidy_sampling, records, names),
        grids=tidy(final_grid, records, names),
    )
