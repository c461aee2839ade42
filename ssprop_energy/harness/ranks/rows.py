"""A distributed run's epoch on disk: every rank's row and readings in its own folder
(``ranks/rank-<r>/``), and the run's row of totals in its epochs.csv (docs/distributed.md).

The totals row, from the ranks' rows (their sources already under run-wide names):

- per-source columns (``energy_j_<source>``, ``energy_j_<phase>_<source>``,
  ``provenance_<source>``): each rank's own, side by side;
- ``energy_j``, ``energy_j_<phase>``: the sum over the sources with a figure (NaN when none
  has), as in a one-process row; ``emissions_kg``: the sum over the ranks with a figure;
- ``flops_*``, ``cpu_s_own``: the sum over ranks (FLOPs are counted per rank);
- ``time_s``: the slowest rank's; ``time_s_<phase>``: the mean over ranks;
- ``cpu_s_other``, ``cpu_load_other``: per node, what local rank 0 saw less the CPU time of
  the node's other ranks (they are the run, not contention); summed, and the largest load;
- ``run_id``, ``epoch``, ``steps``, ``keep``: rank 0's (the same on every rank);
- every other column (loss, metrics): the mean over ranks (validation metrics agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ...store import ENERGY, PHASES, PowerWriter, RunStore, rank_folder, source_column

SAME_ON_EVERY_RANK = ("run_id", "epoch", "steps", "keep")


def _per_source(column: str, sources: Sequence[str]) -> bool:
    head, _, last = column.rpartition("_")
    return last in sources and head.startswith(("energy_j", "provenance"))


def _known_sum(values: list[float]) -> float:
    known = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return sum(known) if known else math.nan


def _contention(rows: list[dict[str, Any]], nodes: Sequence[int]) -> dict[str, float]:
    other, load = 0.0, 0.0
    for node in dict.fromkeys(nodes):
        mine = [r for r, n in zip(rows, nodes, strict=True) if n == node]
        first, siblings = mine[0], mine[1:]
        node_other = max(first["cpu_s_other"] - sum(r["cpu_s_own"] for r in siblings), 0.0)
        seen_load = first["cpu_load_other"]
        capacity = first["cpu_s_other"] / seen_load if seen_load > 0 else 0.0
        other += node_other
        load = max(load, min(node_other / capacity, 1.0) if capacity > 0 else 0.0)
    return {"cpu_s_other": other, "cpu_load_other": load}


def total_row(
    rows: list[dict[str, Any]], sources: Sequence[str], nodes: Sequence[int]
) -> dict[str, Any]:
    """The run's epoch row from the ranks' rows (in rank order; ``nodes``: each rank's node,
    local rank 0 first within a node; ``sources``: every rank's sources, run-wide names)."""
    total: dict[str, Any] = {}
    for column in dict.fromkeys(c for row in rows for c in row):
        values = [row[column] for row in rows if column in row]
        if _per_source(column, sources) or column in SAME_ON_EVERY_RANK:
            total[column] = values[0]
        elif column.startswith("flops_") or column == "cpu_s_own":
            total[column] = sum(values)
        elif column == "time_s":
            total[column] = max(values)
        elif column == "emissions_kg":
            total[column] = _known_sum(values)
        elif column.startswith("time_s_") or not column.startswith(("energy_j", "cpu_")):
            total[column] = sum(values) / len(values)
        else:  # energy totals and CPU contention: their place now, their value below
            total[column] = math.nan
    for phase in PHASES:
        total[f"energy_j_{phase}"] = _known_sum(
            [
                total[source_column(ENERGY, s, phase)]
                for s in sources
                if source_column(ENERGY, s, phase) in total
            ]
        )
    total["energy_j"] = _known_sum([total[source_column(ENERGY, s)] for s in sources])
    if all("cpu_s_other" in row for row in rows):
        total.update(_contention(rows, nodes))
    return total


class RankFiles:
    """Rank 0's writer of every rank's folder: its epochs.csv and its power chunks, kept to
    the run's first ``epochs_kept`` epochs on resume (later ones are trained again)."""

    def __init__(self, run_dir: Path, world: int, epochs_kept: int) -> None:
        self.stores = [RunStore(rank_folder(run_dir, rank)) for rank in range(world)]
        self.writers: list[PowerWriter] = []
        for store in self.stores:
            store.path.mkdir(parents=True, exist_ok=True)
            stored = store.read_epochs()
            if len(stored) > epochs_kept:
                store.write_epochs(stored.iloc[:epochs_kept])
            self.writers.append(store.power_writer(epochs_kept))

    def write(self, rows: list[dict[str, Any]], traces: list[pd.DataFrame], epoch: int) -> None:
        """Each rank's row, then each rank's readings of ``epoch``."""
        for store, row in zip(self.stores, rows, strict=True):
            store.append_epoch(row)
        self.write_trace(traces, epoch)

    def write_trace(self, traces: list[pd.DataFrame], epoch: int | None) -> None:
        for writer, trace in zip(self.writers, traces, strict=True):
            writer.write(trace, epoch)
