"""The ranks of distributed runs: each rank's totals (ranks.csv) and how unevenly the ranks
worked (summary.csv's ``world_size``, ``global_batch_size`` and imbalance columns)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..store import RunRecord

RANK_COLUMNS = ("energy_j", "time_s", "flops_total", "emissions_kg")


def rank_rows(record: RunRecord, run: str) -> pd.DataFrame:
    """One row per rank of a distributed run: its totals over the stored epochs and its
    share of the run's energy (rows of the report's ranks.csv); empty for one process."""
    if record.ranks.empty:
        return pd.DataFrame()
    by_rank = record.ranks.groupby("rank", sort=True)
    table = pd.DataFrame(
        {c: by_rank[c].sum(min_count=1) for c in RANK_COLUMNS if c in record.ranks}
    ).reset_index()
    dist = record.meta.distributed
    hosts = {r.rank: r for r in dist.ranks} if dist is not None else {}
    table.insert(0, "run", run)
    table.insert(1, "run_id", record.run_id)
    table["node"] = [hosts[r].node if r in hosts else None for r in table["rank"]]
    table["sources"] = [" ".join(hosts[r].sources) if r in hosts else "" for r in table["rank"]]
    run_energy = table["energy_j"].sum(min_count=1)
    table["energy_share"] = table["energy_j"] / run_energy if run_energy else math.nan
    return table


def imbalance_pct(values: pd.Series) -> float:
    """``100 * (max / mean - 1)`` over the values with a figure: 0 when the ranks worked
    alike; NaN with fewer than two figures."""
    known = values.dropna()
    if len(known) < 2 or known.mean() <= 0:
        return math.nan
    return 100.0 * (known.max() / known.mean() - 1.0)


def rank_summary(record: RunRecord) -> dict[str, Any]:
    """summary.csv's columns on the ranks: ``world_size`` (1 for one process),
    ``global_batch_size``, ``rank_energy_imbalance_pct``, ``rank_time_imbalance_pct``."""
    dist = record.meta.distributed
    table = rank_rows(record, "")
    batch = (record.meta.run_config.get("data") or {}).get("batch_size")
    return {
        "world_size": 1 if dist is None else dist.world_size,
        "global_batch_size": batch if dist is None else dist.global_batch_size,
        "rank_energy_imbalance_pct": (
            imbalance_pct(table["energy_j"]) if "energy_j" in table else math.nan
        ),
        "rank_time_imbalance_pct": (
            imbalance_pct(table["time_s"]) if "time_s" in table else math.nan
        ),
    }


def rank_notes(table: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """One line per distributed run: its ranks, global batch, energy per rank, imbalance."""
    if table.empty or "world_size" not in summary:
        return []
    notes = []
    for run, rows in table.groupby("run", sort=False):
        info = summary[summary["run"] == run].iloc[0]
        energy = ", ".join(
            "-" if math.isnan(e) else f"{e:.4g} J" for e in rows["energy_j"].astype(float)
        )
        spread = info["rank_energy_imbalance_pct"]
        shown = (
            "n/a (fewer than two ranks with a figure)" if math.isnan(spread) else f"{spread:.1f}%"
        )
        notes.append(
            f"{run}: {len(rows)} ranks, global batch {info['global_batch_size']}; energy per "
            f"rank {energy}; imbalance {shown}; time imbalance "
            f"{info['rank_time_imbalance_pct']:.1f}%"
        )
    return notes
