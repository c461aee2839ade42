"""Source names across a distributed run: each rank's GPU by global rank, each node's CPU
by node, and an epoch row or trace renamed to them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ...store import parse_source_column, source_column
from .environment import Ranks


def global_source(name: str, ranks: Ranks) -> str:
    """A source's name in the run's store: a GPU by global rank (``gpu<rank>``, one GPU per
    rank), the CPU and DRAM of node ``n > 0`` as ``cpu<n>``, ``dram<n>`` (node 0 keeps
    ``cpu``, ``dram``), so names are unique across the run's nodes."""
    if name.startswith("gpu"):
        return f"gpu{ranks.rank}"
    return name if ranks.node == 0 else f"{name}{ranks.node}"


def rename_sources(row: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """An epoch row with its per-source columns (``energy_j_<source>``,
    ``energy_j_<phase>_<source>``, ``provenance_<source>``) under the new names."""
    out = {}
    for column, value in row.items():
        parsed = parse_source_column(column)
        if parsed is not None and parsed[2] in names:
            column = source_column(parsed[0], names[parsed[2]], parsed[1])
        out[column] = value
    return out


def rename_trace(frame: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.assign(source=frame["source"].map(lambda s: names.get(s, s)))
