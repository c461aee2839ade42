"""Charts of runs epoch by epoch: accuracy and loss, generation quality, energy per epoch,
and accuracy against cumulative energy with the methods' Pareto front."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .chart_kit import fit_legend, new_figure, palette, per_run, run_styles
from .contents import ReportContents


def training_curves(report: ReportContents) -> Figure | None:
    epochs = report.epochs
    if epochs.empty or "accuracy" not in epochs:
        return None
    styles = run_styles(report.runs)
    fig, (acc, loss) = new_figure(1, 2)
    per_run(acc, epochs, styles, "accuracy", "validation accuracy")
    loss_column = "val_loss" if "val_loss" in epochs else "train_loss"
    per_run(loss, epochs, styles, loss_column, "validation loss", False)
    if report.target_accuracy is not None:
        acc.axhline(
            report.target_accuracy, color="black", linestyle=":", linewidth=1, label="target"
        )
    fit_legend(fig, epochs["run"].nunique())
    return fig


def generation_curves(report: ReportContents) -> Figure | None:
    """The generation runs' validation denoising loss and score per epoch (scored epochs)."""
    epochs = report.epochs
    if epochs.empty or "val_denoise_loss" not in epochs:
        return None
    epochs = epochs[epochs["val_denoise_loss"].notna()]
    styles = run_styles(report.runs)
    fig, (loss, fd) = new_figure(1, 2)
    per_run(loss, epochs, styles, "val_denoise_loss", "validation denoising loss")
    if "fd_classifier" in epochs:
        scored = epochs[epochs["fd_classifier"].notna()]
        per_run(fd, scored, styles, "fd_classifier", "fd_classifier (lower = closer)", False)
    fit_legend(fig, epochs["run"].nunique())
    return fig


def epoch_energy(report: ReportContents) -> Figure | None:
    epochs = report.epochs
    if epochs.empty or "energy_j_cum" not in epochs:
        return None
    styles = run_styles(report.runs)
    fig, (per_epoch, cumulative) = new_figure(1, 2)
    per_run(per_epoch, epochs, styles, "energy_j", "energy per epoch (J)")
    per_run(cumulative, epochs, styles, "energy_j_cum", "cumulative energy (J)", False)
    fit_legend(fig, epochs["run"].nunique())
    return fig


def pareto_front(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (no more cost and no less score, one of
    them strictly), sorted by cost; NaN points are never on the front."""
    known = np.flatnonzero(~(np.isnan(cost) | np.isnan(score)))
    order = known[np.lexsort((-score[known], cost[known]))]
    front: list[int] = []
    for i in order:
        if not front or score[i] > score[front[-1]]:
            front.append(int(i))
    return np.array(front, dtype=int)


def accuracy_energy(report: ReportContents) -> Figure | None:
    """Each run's validation accuracy against its cumulative energy, epoch by epoch; each
    method's mean final point (error bars: std over seeds) and the Pareto front of those."""
    epochs = report.epochs
    if epochs.empty or not {"accuracy", "energy_j_cum"} <= set(epochs.columns):
        return None
    if not epochs["energy_j_cum"].notna().any():
        return None
    styles = run_styles(report.runs)
    fig, (ax,) = new_figure(height=3.6)
    per_run(ax, epochs, styles, "accuracy", "validation accuracy", x="energy_j_cum")
    methods = report.methods
    if {"energy_j_mean", "final_accuracy_mean"} <= set(methods.columns):
        cost = methods["energy_j_mean"].to_numpy(dtype=float)
        score = methods["final_accuracy_mean"].to_numpy(dtype=float)
        labels = list(dict.fromkeys(report.runs["method_label"]))
        colors = palette(len(labels))
        for i, row in enumerate(methods.itertuples(index=False)):
            if np.isnan(cost[i]) or np.isnan(score[i]) or row.method_label not in labels:
                continue
            ax.errorbar(
                cost[i],
                score[i],
                xerr=np.nan_to_num(getattr(row, "energy_j_std", math.nan)),
                yerr=np.nan_to_num(getattr(row, "final_accuracy_std", math.nan)),
                marker="o",
                markersize=8,
                markerfacecolor="white",
                color=colors[labels.index(row.method_label)],
                capsize=3,
                label="_nolegend_",
                zorder=3,
            )
        front = pareto_front(cost, score)
        if len(front):
            ax.plot(
                cost[front],
                score[front],
                color="black",
                linewidth=1.2,
                drawstyle="steps-post",
                label="Pareto front of the method means",
                zorder=2,
            )
    if report.target_accuracy is not None:
        ax.axhline(
            report.target_accuracy, color="black", linestyle=":", linewidth=1, label="target"
        )
    ax.set_xlabel("cumulative energy (J)")
    fit_legend(fig, epochs["run"].nunique() + 1)
    return fig
