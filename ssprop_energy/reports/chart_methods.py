"""Charts of methods side by side: FLOPs and joules per phase, savings against the
baseline, predicted against actual cost, and the channels the gated methods kept."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..store import FLOPS_OF_PHASE, NO_SETUP, PHASES
from .chart_kit import (
    BEFORE_PRUNING_COLOR,
    SAVING_LABELS,
    TICK_WIDTH,
    fit_legend,
    new_figure,
    palette,
)
from .compare import SAVINGS
from .contents import ReportContents


def group_labels(methods: pd.DataFrame) -> list[str]:
    """Method label and setup, wrapped so a long label stays inside the figure."""
    return [
        "\n".join(textwrap.wrap(str(label), TICK_WIDTH) + ([] if setup == NO_SETUP else [setup]))
        for label, setup in zip(methods["method_label"], methods["setup"], strict=True)
    ]


def _grouped_bars(
    ax: Axes, methods: pd.DataFrame, columns: dict[str, str], errors: bool = False
) -> None:
    """Bars per method row, one bar per column; error bars from ``<column>_std``."""
    x = np.arange(len(methods))
    width = 0.8 / max(1, len(columns))
    for i, (column, label) in enumerate(columns.items()):
        values = methods[f"{column}_mean"].to_numpy(dtype=float)
        yerr = methods[f"{column}_std"].fillna(0).to_numpy(dtype=float) if errors else None
        ax.bar(
            x + (i - (len(columns) - 1) / 2) * width,
            values,
            width,
            yerr=yerr,
            label=label,
            capsize=3 if errors else 0,
        )
    ax.set_xticks(x, group_labels(methods), rotation=20, ha="right")
    ax.legend(frameon=False)


def phase_costs(report: ReportContents) -> Figure | None:
    methods = report.methods

    def has(column: str) -> bool:
        return f"{column}_mean" in methods and bool(methods[f"{column}_mean"].notna().any())

    flops = {c: p for p, c in FLOPS_OF_PHASE.items() if has(c)}
    energy = {f"energy_j_{p}": p for p in PHASES if has(f"energy_j_{p}")}
    if not (flops and energy):
        return None
    fig, (left, right) = new_figure(1, 2, height=3.6)
    _grouped_bars(left, methods, flops)
    left.set_ylabel("FLOPs per run")
    _grouped_bars(right, methods, energy)
    right.set_ylabel("energy per run (J)")
    return fig


def savings(report: ReportContents) -> Figure | None:
    methods = report.methods
    if methods.empty or "energy_saving_pct_mean" not in methods:
        return None
    compared = methods[methods["energy_saving_pct_mean"].notna()]
    if compared.empty:
        return None
    columns = {c: SAVING_LABELS[c] for c in SAVINGS if c in SAVING_LABELS}
    fig, (left, right) = new_figure(1, 2, height=3.6)
    _grouped_bars(left, compared, columns, errors=True)
    left.set_ylabel(f"saving against {report.baseline} (%)\npositive = less")
    left.axhline(0, color="black", linewidth=0.8)
    _grouped_bars(right, compared, {"accuracy_change_points": "accuracy"}, errors=True)
    right.set_ylabel("accuracy change (points)\npositive = higher")
    right.axhline(0, color="black", linewidth=0.8)
    return fig


def predicted_vs_actual(report: ReportContents) -> Figure | None:
    """Actual against predicted time and energy of the finished runs with an estimate."""
    runs = report.runs
    if "prediction_error_time_pct" not in runs:
        return None
    runs = runs[runs["prediction_error_time_pct"].notna()]
    if runs.empty:
        return None
    fig, axes = new_figure(1, 2)
    for ax, column, unit in zip(axes, ("time_s", "energy_j"), ("s", "J"), strict=True):
        rows = runs[runs[f"predicted_{column}"].notna() & runs[column].notna()]
        predicted = rows[f"predicted_{column}"].to_numpy(dtype=float)
        spread = np.abs(
            np.vstack(
                [
                    predicted - rows[f"predicted_{column}_low"].to_numpy(dtype=float),
                    rows[f"predicted_{column}_high"].to_numpy(dtype=float) - predicted,
                ]
            )
        )
        colors = palette(len(rows))
        for i, (name, x, y) in enumerate(
            zip(rows["run"], predicted, rows[column].to_numpy(dtype=float), strict=True)
        ):
            label = str(name) if ax is axes[0] else "_nolegend_"
            ax.errorbar(
                x, y, xerr=spread[:, i : i + 1], fmt="o", capsize=3, color=colors[i], label=label
            )
        if len(rows):
            top = float(max(predicted.max(), rows[column].max())) * 1.1
            line = np.array([0.0, top])
            ax.plot(line, line, color="black", linewidth=0.8)
            for factor in (0.9, 1.1):
                ax.plot(line, line * factor, color="gray", linewidth=0.6, linestyle=":")
        ax.set_xlabel(f"predicted {column} ({unit})")
        ax.set_ylabel(f"actual {column} ({unit})")
    fit_legend(fig, len(runs))
    return fig


def kept_channels(report: ReportContents) -> Figure | None:
    """Per gated method, one bar group per layer: its units before pruning (grey) and the
    units each run kept."""
    gates = report.gates
    if gates.empty:
        return None
    labels = list(dict.fromkeys(gates["method_label"]))
    layers = max(gates.groupby("method_label")["layer"].nunique())
    fig = Figure(figsize=(max(4.6, 0.45 * layers + 1.5), 3.0 * len(labels)), layout="constrained")
    for ax, label in zip(fig.subplots(len(labels), 1, squeeze=False).flat, labels, strict=True):
        rows = gates[gates["method_label"] == label]
        names = list(dict.fromkeys(rows["layer"]))
        runs = list(dict.fromkeys(rows["run"]))
        x = np.arange(len(names))
        width = 0.8 / (len(runs) + 1)
        channels = rows.groupby("layer", sort=False)["channels"].max().reindex(names)
        ax.bar(
            x - 0.4 + width / 2, channels, width, color=BEFORE_PRUNING_COLOR, label="before pruning"
        )
        for i, (run, color) in enumerate(zip(runs, palette(len(runs)), strict=True)):
            layers_of_run = rows[rows["run"] == run].drop_duplicates("layer")
            kept = layers_of_run.set_index("layer")["kept"].reindex(names)
            ax.bar(x - 0.4 + width * (i + 1.5), kept, width, color=color, label=f"kept: {run}")
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("channels (or blocks)")
        ax.set_title(label)
        ax.legend(frameon=False)
    return fig
