"""The EnergyMeter as Jupyter shows it: its sources, and its summary with a row of totals."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..columns import PROVENANCE, source_column
from ..provenance import combine

if TYPE_CHECKING:
    from .meter import EnergyMeter


def meter_html(meter: EnergyMeter) -> str:
    """The sources and the summary table with a row of totals over the windows; windows
    that overlap are counted once each in those totals."""
    if not meter._started:
        return "<p>EnergyMeter (not started)</p>"
    state = "running" if not meter._stopped else "stopped"
    sources = pd.DataFrame(
        [(s.name, s.provenance, s.device or "", s.reason or "") for s in meter.sources],
        columns=["source", "provenance", "device", "reason"],
    )
    summary = meter.summary()
    if not summary.empty:
        total: dict[str, Any] = {c: "" for c in summary.columns}
        total["window"] = "sum of the windows"
        for column in summary.columns:
            if column in ("count", "time_s") or column.startswith(("energy_j", "emissions")):
                total[column] = summary[column].sum(skipna=False)
        for name in (s.name for s in meter.sources):
            label = source_column(PROVENANCE, name)
            total[label] = combine(summary[label])
        summary = pd.concat([summary, pd.DataFrame([total])], ignore_index=True)
    return (
        f"<p>EnergyMeter ({state}), {html.escape(meter.country)}: "
        f"{meter.carbon_intensity_g_per_kwh:.4g} g CO2eq/kWh</p>"
        + sources.to_html(index=False)
        + summary.to_html(index=False, na_rep="–", float_format="{:.4g}".format)
    )
