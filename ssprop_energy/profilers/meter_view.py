"""The EnergyMeter as Jupyter shows it: its sources, and its summary with a row of totals."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..columns import PROVENANCE, source_column
from ..provenance import combine
from .sources import SourceInfo


def meter_html(
    state: str | None,
    meter_sources: Sequence[SourceInfo],
    summary: pd.DataFrame,
    place: tuple[str, float],
) -> str:
    """A meter in ``state`` (``running``, ``stopped``; None: not started): its sources and
    its ``summary`` table with a row of totals over the windows (windows that overlap are
    counted once each in those totals); ``place``: its country and carbon intensity."""
    if state is None:
        return "<p>EnergyMeter (not started)</p>"
    sources = pd.DataFrame(
        [(s.name, s.provenance, s.device or "", s.reason or "") for s in meter_sources],
        columns=["source", "provenance", "device", "reason"],
    )
    if not summary.empty:
        total: dict[str, Any] = {c: "" for c in summary.columns}
        total["window"] = "sum of the windows"
        for column in summary.columns:
            if column in ("count", "time_s") or column.startswith(("energy_j", "emissions")):
                total[column] = summary[column].sum(skipna=False)
        for name in (s.name for s in meter_sources):
            label = source_column(PROVENANCE, name)
            total[label] = combine(summary[label])
        summary = pd.concat([summary, pd.DataFrame([total])], ignore_index=True)
    return (
        f"<p>EnergyMeter ({state}), {html.escape(place[0])}: "
        f"{place[1]:.4g} g CO2eq/kWh</p>"
        + sources.to_html(index=False)
        + summary.to_html(index=False, na_rep="–", float_format="{:.4g}".format)
    )
