"""Charts of a sweep's setups: energy to the target per setup, and its heat maps over the
sweep grid."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..store import NO_SETUP
from .chart_kit import NOT_REACHED_COLOR, new_figure
from .chart_methods import group_labels
from .contents import ReportContents


def _reached(setups: pd.DataFrame) -> pd.Series:
    return (setups["target_status"] == "reached") & setups["energy_j_to_target_mean"].notna()


def energy_to_target(report: ReportContents) -> Figure | None:
    if report.setups.empty:
        return None
    setups = report.setups[report.setups["setup"] != NO_SETUP]
    if setups["setup"].nunique() < 2 or not _reached(setups).any():
        return None
    labels = group_labels(setups)
    fig, (ax,) = new_figure(height=0.3 * len(setups) + 1.2)
    y = np.arange(len(setups))
    reached = _reached(setups).to_numpy()
    values = setups["energy_j_to_target_mean"].to_numpy(dtype=float)
    errors = setups["energy_j_to_target_std"].fillna(0).to_numpy(dtype=float)
    ax.barh(y[reached], values[reached], xerr=errors[reached], capsize=3)
    for yi, status in zip(y[~reached], setups["target_status"][~reached], strict=True):
        ax.text(0, yi, f" {status.replace('_', ' ')}", va="center", color="dimgray", style="italic")
    ax.set_yticks(y, [label.replace("\n", "  ") for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel("energy to target (J)")
    return fig


def heatmap_axes(setups: pd.DataFrame) -> tuple[str, str] | None:
    """The two ``setup_*`` columns to draw as a grid: lr (rows) x batch_size (columns)
    when present, otherwise the first two sweep fields; None for other sweep shapes."""
    fields = [c for c in setups.columns if c.startswith("setup_")]
    if len(fields) != 2:
        return None
    preferred = ["setup_lr", "setup_batch_size"]
    return (preferred[0], preferred[1]) if set(fields) == set(preferred) else (fields[0], fields[1])


def _tick(value: object) -> str:
    """A sweep value as typed in the config: ``64``, not ``64.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _heatmap(
    ax: Axes, rows: pd.DataFrame, grid_of: pd.DataFrame, y_field: str, x_field: str
) -> None:
    """The cells of ``rows`` on the grid spanned by all sweep points in ``grid_of``."""
    ys = sorted(grid_of[y_field].dropna().unique())
    xs = sorted(grid_of[x_field].dropna().unique())
    grid = np.full((len(ys), len(xs)), np.nan)
    text = [["no run"] * len(xs) for _ in ys]
    for _, row in rows.dropna(subset=[y_field, x_field]).iterrows():
        i, j = ys.index(row[y_field]), xs.index(row[x_field])
        if row["target_status"] == "reached" and not math.isnan(row["energy_j_to_target_mean"]):
            grid[i, j] = row["energy_j_to_target_mean"]
            text[i][j] = f"{row['energy_j_to_target_mean']:.4g} J"
        else:
            text[i][j] = str(row["target_status"]).replace("_", " ")
    ax.set_facecolor(NOT_REACHED_COLOR)
    ax.grid(False)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis_r", aspect="auto")
    for i, j in np.ndindex(grid.shape):
        ax.text(
            j,
            i,
            text[i][j],
            ha="center",
            va="center",
            fontsize=7,
            color="black" if math.isnan(grid[i, j]) else "white",
        )
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(x_field.removeprefix("setup_"))
    ax.set_ylabel(y_field.removeprefix("setup_"))
    if not np.isnan(grid).all():
        ax.figure.colorbar(image, ax=ax, label="energy to target (J)")


def target_heatmaps(report: ReportContents) -> Figure | None:
    setups = report.setups
    fields = heatmap_axes(setups) if not setups.empty else None
    if fields is None or (setups["target_status"] == "no_target").all():
        return None
    labels = list(dict.fromkeys(setups["method_label"]))
    fig, axes = new_figure(1, len(labels), height=3.4)
    for ax, label in zip(axes, labels, strict=True):
        _heatmap(ax, setups[setups["method_label"] == label], setups, *fields)
        ax.set_title(label)
    return fig
