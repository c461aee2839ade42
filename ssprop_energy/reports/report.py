"""``build_report``: the store's runs as comparison tables; ``write_report``: CSV + HTML.

A report reads only the results store (docs/store.md), so it can be rebuilt at any time,
also from an interrupted sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..provenance import ESTIMATED, UNAVAILABLE, is_mixed
from ..stats import LEVEL, TEST, Interval
from ..store import (
    FINISHED,
    NO_SETUP,
    SETTLED,
    PowerTraceDamaged,
    RunRecord,
    is_run_dir,
    load_sweep,
    read_matrix,
)
from .aggregate import GROUP, SWEEP, method_table, setup_table
from .compare import add_comparisons
from .empty import empty_column_notes, sources_without_figures
from .noise import idle_drift_flags, run_noise
from .ranks import rank_notes, rank_rows, rank_summary
from .runs import (
    calibrated_phases,
    match_key,
    phase_rows,
    sources_of,
    summarize_run,
    tidy_epochs,
    tidy_gates,
    tidy_inference,
    tidy_sampling,
)
from .samples import final_grid


@dataclass(frozen=True)
class Report:
    """The tables of a report (pandas DataFrames, one per CSV file) and its headline."""

    runs: pd.DataFrame
    """summary.csv: one row per run, with the comparison against its baseline."""
    methods: pd.DataFrame
    """methods.csv: one row per method and sweep point, mean and std over finished seeds."""
    epochs: pd.DataFrame
    """epochs.csv: every epoch row of every run, with cumulative totals."""
    phases: pd.DataFrame
    """phases.csv: one row per run and phase: seconds, joules, FLOPs, J/GFLOP."""
    setups: pd.DataFrame
    """setups.csv: energy, time, FLOPs, emissions to target per sweep point, ranked."""
    power: pd.DataFrame
    """The power trace of every run, downsampled (``StoredTrace.overview``'s sketch): run,
    source, time_s (a bin's centre), samples, power_w (mean), power_w_min, power_w_max."""
    power_epochs: pd.DataFrame
    """Power per run, source and epoch: run, source, epoch, samples, time_s_start,
    time_s_end, power_w (mean), power_w_min, power_w_max."""
    environment: pd.DataFrame
    """Distinct environments (GPU, driver, CPU, torch, ...) and the runs on each."""
    energy_sources: pd.DataFrame
    """Energy sources per distinct configuration: provenance, device, reason, idle power."""
    inference: pd.DataFrame
    """inference.csv: every run's final-model inference rows (one per batch size); empty
    when no run has them."""
    gates: pd.DataFrame
    """gates.csv: every gated run's layers: channels and kept units; empty when no run has
    them."""
    ranks: pd.DataFrame
    """ranks.csv: one row per rank of every distributed run: run, run_id, rank, energy_j,
    time_s, flops_total, emissions_kg, node, sources, energy_share; empty when no run has
    ranks."""
    missing: pd.DataFrame
    """missing.csv: the planned runs of the sweeps (their matrix.csv) that have not ended
    yet: run_id, method_label, seed, setup, status (``not started``, ``running``,
    ``interrupted``, ``failed``, ``damaged``); empty when every planned run has ended."""
    headline: str
    """The one-line answer: the method that saved the most energy against the baseline."""
    highlights: tuple[str, ...] = ()
    """One line per compared method and sweep point, and per sweep ranking."""
    notes: tuple[str, ...] = ()
    """What was excluded from means, mixed provenance, missing baselines, empty columns, and
    every flag."""
    flags: tuple[str, ...] = ()
    """Runs measured on a busy or noisy machine, and idle power that drifted between runs
    (thresholds in :mod:`.noise`); empty on a quiet machine."""
    title: str = ""
    baseline: str = "dense"
    target_accuracy: float | None = None
    sources: tuple[str, ...] = ()
    sampling: pd.DataFrame = field(default_factory=pd.DataFrame)
    """sampling.csv: every generation run's metered sampling, one row per sampled epoch;
    empty when no run has them."""
    grids: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Each generation run's last sample grid (``png_base64``, ``epoch`` from 0) with its
    final ``val_denoise_loss``, last ``fd_classifier`` and sampling cost (not a CSV file)."""

    def _repr_html_(self) -> str:
        """Headline, highlights, notes and the methods table (for Jupyter)."""
        from .html import notebook_html  # the page's module imports this one

        return notebook_html(self)


def _load(
    run_dirs: Sequence[Path | str],
) -> tuple[list[RunRecord], list[str], dict[str, str]]:
    """The readable runs, one note per damaged run (left out of every table), and every
    run's status by id (``damaged`` for a damaged one)."""
    if not run_dirs:
        raise UserError("report: give at least one run folder")
    records: dict[Path, RunRecord] = {}
    for run_dir in run_dirs:
        for record in load_sweep(run_dir):
            records.setdefault(record.path.resolve(), record)
    readable = [r for r in records.values() if r.damage is None]
    damaged = [f"damaged, left out: {r.damage}" for r in records.values() if r.damage]
    if not readable:
        raise UserError(f"no readable run; {damaged[0]}")
    return readable, damaged, {r.run_id: r.status for r in records.values()}


MISSING_COLUMNS = ("run_id", "method_label", "seed", "setup", "status")
NOT_STARTED = "not started"


def _missing(run_dirs: Sequence[Path | str], statuses: dict[str, str]) -> pd.DataFrame:
    """The planned runs of the sweep folders among ``run_dirs`` without a settled run
    (``statuses``: every stored run's status by id, damaged ones included)."""
    rows = []
    for run_dir in run_dirs:
        if is_run_dir(Path(run_dir)):
            continue
        for planned in read_matrix(run_dir).to_dict("records"):
            status = statuses.get(planned["run_id"], NOT_STARTED)
            if status not in SETTLED:
                rows.append({**planned, "status": status})
    frame = pd.DataFrame(rows, columns=list(MISSING_COLUMNS))
    return frame.drop_duplicates("run_id", ignore_index=True)


def _missing_note(missing: pd.DataFrame, planned: int) -> list[str]:
    if missing.empty:
        return []
    runs = ", ".join(f"{r.run_id} ({r.status})" for r in missing.itertuples())
    return [f"{len(missing)} of {planned} planned runs not ended yet (missing.csv): {runs}"]


def _planned(run_dirs: Sequence[Path | str]) -> int:
    ids = {
        run_id
        for d in run_dirs
        if not is_run_dir(Path(d))
        for run_id in read_matrix(d).get("run_id", [])
    }
    return len(ids)


def _run_notes(records: list[RunRecord], names: list[str]) -> list[str]:
    """Why each failed run failed, and which runs were killed while running."""
    notes = []
    for record, name in zip(records, names, strict=True):
        if record.note is not None:
            notes.append(f"{name}: {record.note}")
        elif record.status == "failed":
            notes.append(f"{name}: failed: {record.meta.get('error') or 'no error recorded'}")
    return notes


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
    labels = {
        c: f"energy_j_{c.removeprefix('provenance_')}"
        for c in columns
        if c.startswith("provenance_")
    }
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


def _tidy(
    rows_of: Callable[[RunRecord, str], pd.DataFrame], records: list[RunRecord], names: list[str]
) -> pd.DataFrame:
    """The rows ``rows_of`` gives for every run, one table (empty when no run has any)."""
    frames = [rows_of(r, n) for r, n in zip(records, names, strict=True)]
    return pd.concat([f for f in frames if not f.empty] or [pd.DataFrame()], ignore_index=True)


def _target(records: list[RunRecord], target: float | None) -> tuple[float | None, list[str]]:
    if target is not None:
        if not 0 < target <= 1:
            raise ValueError(f"target accuracy must be in (0, 1], got {target}")
        return target, []
    stored = {r.meta.get("target_accuracy") for r in records} - {None}
    if len(stored) > 1:
        values = ", ".join(str(v) for v in sorted(stored))
        return None, [f"runs have different target accuracies ({values}); give one to compare"]
    return (float(next(iter(stored))) if stored else None), []


def _power(
    records: list[RunRecord], names: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Every run's downsampled trace and power per epoch, read one chunk at a time; a
    damaged trace is left out with a note (the run's other tables stay)."""
    sketches, epochs, notes = [], [], []
    for record, name in zip(records, names, strict=True):
        try:
            overview = record.trace.overview()
        except PowerTraceDamaged as exc:
            notes.append(f"{name}: power trace left out: {exc}")
            continue
        sketches.append(overview.sketch.assign(run=name))
        epochs.append(overview.epochs.assign(run=name))
    return _stacked(sketches), _stacked(epochs), notes


def _stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table of per-run frames, ``run`` first."""
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run"])
    return table[["run", *(c for c in table.columns if c != "run")]]


CITE_CALIBRATED = (
    "phases.csv: cite energy_j_calibrated for the energy of a forward, backward or "
    "optimizer phase (differential: from blocks of steps long enough for the energy "
    "counter); energy_j is the phases' own windows, split by time where they are shorter "
    "than the counter's update period (provenance split), as if every phase drew the same power"
)
"""The report's note on which phase figure to cite, where a run has a phase calibration."""


ENVIRONMENT_FIELDS = ("gpus", "driver", "cuda", "cpu", "torch", "python", "platform")


def _environment(records: list[RunRecord], names: list[str]) -> pd.DataFrame:
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for record, name in zip(records, names, strict=True):
        env = record.meta.get("environment") or {}
        values = {
            f: ", ".join(map(str, env.get(f) or [])) if f == "gpus" else str(env.get(f) or "")
            for f in ENVIRONMENT_FIELDS
        }
        row = rows.setdefault(tuple(values.values()), {**values, "runs": []})
        row["runs"].append(name)
    return pd.DataFrame(
        [{**r, "n_runs": len(r["runs"]), "runs": "; ".join(r["runs"])} for r in rows.values()]
    )


def _energy_sources(records: list[RunRecord]) -> pd.DataFrame:
    """One row per source (and device, reason, country): the idle power measured before
    each run as a range over the runs that measured it (``n_idle``)."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    idle_of: dict[tuple[str, ...], list[float]] = {}
    for record in records:
        energy = record.meta.get("energy") or {}
        idle = energy.get("idle_power_w") or {}
        for source in sources_of(record):
            info = (energy.get("sources") or {}).get(source, {})
            row = {
                "source": source,
                "provenance": info.get("provenance", ""),
                "device": info.get("device") or "",
                "reason": info.get("reason") or "",
                "country": energy.get("country", ""),
                "carbon_intensity_g_per_kwh": energy.get("carbon_intensity_g_per_kwh", math.nan),
            }
            key = tuple(str(v) for v in row.values())
            rows.setdefault(key, {**row, "n_runs": 0})["n_runs"] += 1
            if source in idle:
                idle_of.setdefault(key, []).append(float(idle[source]))
    for key, row in rows.items():
        values = pd.Series(idle_of.get(key, []), dtype=float)
        row["n_idle"] = len(values)
        row["idle_power_w_min"] = float(values.min()) if len(values) else math.nan
        row["idle_power_w_median"] = float(values.median()) if len(values) else math.nan
        row["idle_power_w_max"] = float(values.max()) if len(values) else math.nan
    return pd.DataFrame(list(rows.values()))


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
    labels = {row.get(f"provenance_{s}", UNAVAILABLE) for s in sources} - {UNAVAILABLE}
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
    line = (
        f"{row['method_label']}{where} vs {baseline}: saves "
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


def _headlines(
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


def _notes(summary: pd.DataFrame, methods: pd.DataFrame, setups: pd.DataFrame) -> list[str]:
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


def build_report(
    run_dirs: Sequence[Path | str], target_accuracy: float | None = None, baseline: str = "dense"
) -> Report:
    """Read sweep or run folders from the store and build the comparison tables.

    ``target_accuracy`` (0 to 1) overrides the runs' own target; ``baseline`` is the method
    (or method label) every other run is compared with, at the same seed and sweep point.
    """
    records, damaged, statuses = _load(run_dirs)
    target, notes = _target(records, target_accuracy)
    notes += damaged
    missing = _missing(run_dirs, statuses)
    notes += _missing_note(missing, _planned(run_dirs))
    summary = pd.DataFrame([summarize_run(r, target) for r in records])
    if any(r.meta.get("distributed") for r in records):
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
    epochs = _tidy(tidy_epochs, records, names)
    energy_sources = _energy_sources(records)
    lines = _headlines(summary, methods, setups, baseline, sources)
    flags = [flag for _, run_flags in noise for flag in run_flags]
    flags += idle_drift_flags(energy_sources)
    notes += _run_notes(records, names) + _notes(summary, methods, setups)
    tables = {"summary.csv": summary, "methods.csv": methods, "setups.csv": setups}
    unavailable = sources_without_figures(epochs, energy_sources, sources)
    notes += empty_column_notes(tables, unavailable, target)
    if not summary["is_baseline"].any():
        notes.append(f"no {baseline} run found: nothing to compare against (see --baseline)")
    power, power_epochs, power_notes = _power(records, names)
    ranks = _tidy(rank_rows, records, names)
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
        environment=_environment(records, names),
        energy_sources=energy_sources,
        inference=_tidy(tidy_inference, records, names),
        gates=_tidy(tidy_gates, records, names),
        ranks=ranks,
        missing=missing,
        headline=lines[0],
        highlights=tuple(lines),
        notes=tuple(notes),
        flags=tuple(flags),
        title=", ".join(sweeps),
        baseline=baseline,
        target_accuracy=target,
        sources=sources,
        sampling=_tidy(tidy_sampling, records, names),
        grids=_tidy(final_grid, records, names),
    )
