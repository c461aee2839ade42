"""Per-source column names: one helper pair spells and parses them (docs/store.md)."""

from __future__ import annotations

import pytest

from ssprop_energy.store import (
    ENERGY,
    ENERGY_PER_1000,
    PHASES,
    PROVENANCE,
    parse_source_column,
    source_column,
)


@pytest.mark.parametrize(
    ("kind", "source", "phase", "column"),
    [
        (ENERGY, "gpu0", None, "energy_j_gpu0"),
        (PROVENANCE, "cpu", None, "provenance_cpu"),
        (ENERGY, "dram", "backward", "energy_j_backward_dram"),
        (ENERGY_PER_1000, "gpu1", None, "energy_j_per_1000_gpu1"),
    ],
)
def test_a_column_is_spelled_and_read_back(
    kind: str, source: str, phase: str | None, column: str
) -> None:
    assert source_column(kind, source, phase) == column
    assert parse_source_column(column) == (kind, phase, source)


@pytest.mark.parametrize(
    "column",
    ["energy_j", "provenance", "time_s_data", "energy_j_per_1000", "energy_j_a_b", "accuracy"]
    + [f"energy_j_{phase}" for phase in PHASES],
)
def test_other_columns_are_no_source_columns(column: str) -> None:
    assert parse_source_column(column) is None
