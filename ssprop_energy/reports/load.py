"""Reading the store for a report: the readable runs of the folders given, the planned runs
still missing, the target, the power traces, and the tables read straight from each run's
meta.json (environments, energy sources)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..store import (
    SETTLED,
    PowerTraceDamaged,
    RunRecord,
    is_run_dir,
    load_sweep,
    read_matrix,
)
from .runs import sources_of


def load_records(
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


def missing_runs(run_dirs: Sequence[Path | str], statuses: dict[str, str]) -> pd.DataFrame:
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


def planned_count(run_dirs: Sequence[Path | str]) -> int:
    ids = {
        run_id
        for d in run_dirs
        if not is_run_dir(Path(d))
        for run_id in read_matrix(d).get("run_id", [])
    }
    return len(ids)


def tidy(
    rows_of: Callable[[RunRecord, str], pd.DataFrame], records: list[RunRecord], names: list[str]
) -> pd.DataFrame:
    """The rows ``rows_of`` gives for every run, one table (empty when no run has any)."""
    frames = [rows_of(r, n) for r, n in zip(records, names, strict=True)]
    return pd.concat([f for f in frames if not f.empty] or [pd.DataFrame()], ignore_index=True)


def target_of(records: list[RunRecord], target: float | None) -> tuple[float | None, list[str]]:
    if target is not None:
        if not 0 < target <= 1:
            raise ValueError(f"target accuracy must be in (0, 1], got {target}")
        return target, []
    stored = {r.meta.target_accuracy for r in records if r.meta.target_accuracy is not None}
    if len(stored) > 1:
        values = ", ".join(str(v) for v in sorted(stored))
        return None, [f"runs have different target accuracies ({values}); give one to compare"]
    return (float(next(iter(stored))) if stored else None), []


def power_tables(
    records: list[RunRecord], names: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Every run's downsampled trace and power per epoch, read one chunk at a time; a
    damaged trace is left out with a note (the run's other tables stay). A run without
    readings (it diverged, failed or was stopped before its first chunk, or is still in its
    first epoch) is left out of the power charts, with a note when other runs have a trace."""
    sketches, epochs, notes, without = [], [], [], []
    for record, name in zip(records, names, strict=True):
        try:
            overview = record.trace.overview()
        except PowerTraceDamaged as exc:
            notes.append(f"{name}: power trace left out: {exc}")
            continue
        if overview.sketch.empty:
            without.append(name)
            continue
        sketches.append(overview.sketch.assign(run=name))
        epochs.append(overview.epochs.assign(run=name))
    if sketches and without:
        notes.append(f"no power trace (left out of the power charts): {', '.join(without)}")
    return _stacked(sketches), _stacked(epochs), notes


def _stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table of per-run frames, ``run`` first; empty frames are left out (their columns
    have no type, and would turn every number of the table into an object)."""
    frames = [f for f in frames if not f.empty]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run"])
    return table[["run", *(c for c in table.columns if c != "run")]]


ENVIRONMENT_FIELDS = ("gpus", "driver", "cuda", "cpu", "torch", "python", "platform")


def environment_table(records: list[RunRecord], names: list[str]) -> pd.DataFrame:
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for record, name in zip(records, names, strict=True):
        env = record.meta.environment
        values = {
            f: ", ".join(env.gpus) if f == "gpus" else str(getattr(env, f) or "")
            for f in ENVIRONMENT_FIELDS
        }
        row = rows.setdefault(tuple(values.values()), {**values, "runs": []})
        row["runs"].append(name)
    return pd.DataFrame(
        [{**r, "n_runs": len(r["runs"]), "runs": "; ".join(r["runs"])} for r in rows.values()]
    )


def energy_sources_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per source (and device, reason, country): the idle power measured before
    each run as a range over the runs that measured it (``n_idle``)."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    idle_of: dict[tuple[str, ...], list[float]] = {}
    for record in records:
        energy = record.meta.energy
        idle = energy.idle_power_w
        for source in sources_of(record):
            info = energy.sources.get(source)
            intensity = energy.carbon_intensity_g_per_kwh
            row = {
                "source": source,
                "provenance": "" if info is None else info.provenance,
                "device": "" if info is None else info.device or "",
                "reason": "" if info is None else info.reason or "",
                "country": energy.country,
                "carbon_intensity_g_per_kwh": math.nan if intensity is None else intensity,
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
