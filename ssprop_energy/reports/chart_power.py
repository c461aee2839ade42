"""Charts of the power traces: the downsampled trace and power per epoch, per source."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .chart_kit import fit_legend, new_figure, run_styles
from .contents import ReportContents


def _power_panels(report: ReportContents, power: pd.DataFrame, by_epoch: bool) -> Figure | None:
    """One panel per source: each run's mean power in its style, with a band from its min
    to its max, against time (thin lines) or against the epoch (markers)."""
    if power.empty:
        return None
    x = "epoch" if by_epoch else "time_s"
    styles = run_styles(report.runs)
    sources = list(dict.fromkeys(power["source"]))
    fig, axes = new_figure(1, len(sources))
    for ax, source in zip(axes, sources, strict=True):
        for run, rows in power[power["source"] == source].groupby("run", sort=False):
            style = styles[str(run)]
            shape = {"marker": style.marker, "markersize": 3} if by_epoch else {"linewidth": 0.8}
            ax.plot(
                rows[x],
                rows["power_w"],
                linestyle=style.linestyle,
                color=style.color,
                label=str(run) if ax is axes[0] else "_nolegend_",
                **shape,
            )
            ax.fill_between(
                rows[x], rows["power_w_min"], rows["power_w_max"], color=style.color, alpha=0.2
            )
        if by_epoch:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(source)
        ax.set_xlabel("epoch" if by_epoch else "time since run start (s)")
        ax.set_ylabel("power (W)")
    fit_legend(fig, power["run"].nunique())
    return fig


def power_trace(report: ReportContents) -> Figure | None:
    return _power_panels(report, report.power, by_epoch=False)


def power_per_epoch(report: ReportContents) -> Figure | None:
    return _power_panels(report, report.power_epochs, by_epoch=True)
