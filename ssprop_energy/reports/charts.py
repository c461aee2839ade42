"""The report's charts as inline SVG, drawn with matplotlib (no script, no network, small).

Text stays SVG text (``svg.fonttype: none``) and math parsing is off, so a run name is drawn
literally and matplotlib's SVG writer escapes it. Every chart plots columns of the report's
CSV files; each :class:`Chart` names them in its caption.

Every run has one colour per method label and one line style per seed (markers tell sweep
points apart), in every chart; epochs are numbered from 1, as in epochs.csv. Legends are
fitted inside the figure (fewer columns, then a wider figure), never clipped.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..store import FLOPS_OF_PHASE, NO_SETUP, PHASES
from .compare import SAVINGS
from .contents import ReportContents

STYLE = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "svg.image_inline": True,  # the heat map's raster stays in the page as a data: URI
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 7,
}
NOT_REACHED_COLOR = "#d9d9d9"
BEFORE_PRUNING_COLOR = "#bdbdbd"
SAVING_LABELS = {
    "flops_backward_saving_pct": "backward FLOPs",
    "flops_saving_pct": "total FLOPs",
    "time_saving_pct": "time",
    "energy_saving_pct": "energy",
    "emissions_saving_pct": "emissions",
}


PDF_STYLE = {"pdf.fonttype": 42}
"""TrueType fonts embedded in the PDF files (what journals ask for), not Type 3."""
LINE_STYLES = ("-", "--", ":", "-.")
MIN_AXES_HEIGHT = 1.2
"""The least height (inches) of a plot beside its figure's legend."""
MAX_GROWTH_STEPS = 20
"""How often a figure may grow for its legend (each step adds what still sticks out)."""
TICK_WIDTH = 24
"""Characters per line of a bar group's label."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class Chart:
    """One figure of the report: an id, a title, the CSV columns it plots, the SVG (for the
    page and ``figures/``) and the figure, drawn as PDF on demand (``figures/``)."""

    key: str
    title: str
    caption: str
    svg: str
    figure: Figure

    def pdf(self) -> bytes:
        """The chart as a PDF file (fonts embedded as TrueType, no creation date)."""
        buffer = io.BytesIO()
        with mpl.rc_context(STYLE | PDF_STYLE):
            self.figure.savefig(buffer, format="pdf", metadata={"CreationDate": None})
        return buffer.getvalue()


def _svg(fig: Figure, key: str) -> str:
    buffer = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": key}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # drop the XML declaration and doctype
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)


def _figure(rows: int = 1, cols: int = 1, height: float = 3.2) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(4.6 * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, list(axes.flat)


def _colors(count: int) -> list[tuple[float, ...]]:
    """Distinct colours: tab10, or tab20 beyond ten (colours cycle beyond twenty)."""
    palette = mpl.colormaps["tab10" if count <= 10 else "tab20"].colors
    return [palette[i % len(palette)] for i in range(count)]


@dataclass(frozen=True)
class RunStyle:
    """How one run is drawn: its method's colour, its seed's line style, its setup's marker."""

    color: tuple[float, ...]
    linestyle: str
    marker: str


def run_styles(runs: pd.DataFrame) -> dict[str, RunStyle]:
    """Each run's style: the colour of its method label, the line style of its seed and
    the marker of its sweep point (in order of first appearance in summary.csv)."""
    labels = list(dict.fromkeys(runs["method_label"]))
    seeds = list(dict.fromkeys(runs["seed"]))
    setups = list(dict.fromkeys(runs["setup"]))
    colors = _colors(len(labels))
    return {
        str(row["run"]): RunStyle(
            colors[labels.index(row["method_label"])],
            LINE_STYLES[seeds.index(row["seed"]) % len(LINE_STYLES)],
            MARKERS[setups.index(row["setup"]) % len(MARKERS)],
        )
        for _, row in runs.iterrows()
    }


def _legend_overflow(fig: Figure) -> tuple[float, float]:
    """How far (inches) the figure legend sticks out of the figure, across and down; down
    also counts what the plots lack of ``MIN_AXES_HEIGHT`` beside a tall legend."""
    with warnings.catch_warnings():  # constrained layout gives up while the legend is too tall
        warnings.filterwarnings("ignore", "constrained_layout not applied")
        fig.draw_without_rendering()
    box, figure = fig.legends[0].get_window_extent(), fig.bbox
    plots = min(ax.get_window_extent().height for ax in fig.axes) / fig.dpi
    across = max(0.0, figure.x0 - box.x0, box.x1 - figure.x1) / fig.dpi
    down = max(0.0, figure.y0 - box.y0, box.y1 - figure.y1) / fig.dpi
    return across, max(down, MIN_AXES_HEIGHT - plots, 0.0)


def _legend(fig: Figure, count: int) -> None:
    """One legend for the figure, below the plots, so it never hides a curve; fewer
    columns, then a wider or taller figure, until it lies inside the figure."""
    if not count:
        return
    for ncols in range(min(3, count), 0, -1):
        if fig.legends:
            fig.legends[0].remove()
        fig.legend(loc="outside lower center", ncols=ncols, frameon=False)
        if _legend_overflow(fig) == (0.0, 0.0):
            return
    for _ in range(MAX_GROWTH_STEPS):
        across, down = _legend_overflow(fig)
        if not (across or down):
            return
        width, height = fig.get_size_inches()
        fig.set_size_inches(
            width + 2 * across + 0.2 if across else width, height + down + 0.2 if down else height
        )


def _per_run(
    ax: Axes,
    epochs: pd.DataFrame,
    styles: dict[str, RunStyle],
    y: str,
    ylabel: str,
    labelled: bool = True,
    x: str = "epoch",
) -> None:
    """One line per run in its style; ``labelled`` lines enter the figure legend."""
    for run, rows in epochs.groupby("run", sort=False):
        style = styles[str(run)]
        ax.plot(
            rows[x],
            rows[y],
            marker=style.marker,
            markersize=3,
            linestyle=style.linestyle,
            color=style.color,
            label=str(run) if labelled else "_nolegend_",
        )
    if x == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (from 1)")
    ax.set_ylabel(ylabel)


def training_curves(report: ReportContents) -> Figure | None:
    epochs = report.epochs
    if epochs.empty or "accuracy" not in epochs:
        return None
    styles = run_styles(report.runs)
    fig, (acc, loss) = _figure(1, 2)
    _per_run(acc, epochs, styles, "accuracy", "validation accuracy")
    loss_column = "val_loss" if "val_loss" in epochs else "train_loss"
    _per_run(loss, epochs, styles, loss_column, "validation loss", False)
    if report.target_accuracy is not None:
        acc.axhline(
            report.target_accuracy, color="black", linestyle=":", linewidth=1, label="target"
        )
    _legend(fig, epochs["run"].nunique())
    return fig


def generation_curves(report: ReportContents) -> Figure | None:
    """The generation runs' validation denoising loss and score per epoch (scored epochs)."""
    epochs = report.epochs
    if epochs.empty or "val_denoise_loss" not in epochs:
        return None
    epochs = epochs[epochs["val_denoise_loss"].notna()]
    styles = run_styles(report.runs)
    fig, (loss, fd) = _figure(1, 2)
    _per_run(loss, epochs, styles, "val_denoise_loss", "validation denoising loss")
    if "fd_classifier" in epochs:
        scored = epochs[epochs["fd_classifier"].notna()]
        _per_run(fd, scored, styles, "fd_classifier", "fd_classifier (lower = closer)", False)
    _legend(fig, epochs["run"].nunique())
    return fig


def epoch_energy(report: ReportContents) -> Figure | None:
    epochs = report.epochs
    if epochs.empty or "energy_j_cum" not in epochs:
        return None
    styles = run_styles(report.runs)
    fig, (per_epoch, cumulative) = _figure(1, 2)
    _per_run(per_epoch, epochs, styles, "energy_j", "energy per epoch (J)")
    _per_run(cumulative, epochs, styles, "energy_j_cum", "cumulative energy (J)", False)
    _legend(fig, epochs["run"].nunique())
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
    fig, (ax,) = _figure(height=3.6)
    _per_run(ax, epochs, styles, "accuracy", "validation accuracy", x="energy_j_cum")
    methods = report.methods
    if {"energy_j_mean", "final_accuracy_mean"} <= set(methods.columns):
        cost = methods["energy_j_mean"].to_numpy(dtype=float)
        score = methods["final_accuracy_mean"].to_numpy(dtype=float)
        labels = list(dict.fromkeys(report.runs["method_label"]))
        colors = _colors(len(labels))
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
    _legend(fig, epochs["run"].nunique() + 1)
    return fig


def _power_panels(report: ReportContents, power: pd.DataFrame, by_epoch: bool) -> Figure | None:
    """One panel per source: each run's mean power in its style, with a band from its min
    to its max, against time (thin lines) or against the epoch (markers)."""
    if power.empty:
        return None
    x = "epoch" if by_epoch else "time_s"
    styles = run_styles(report.runs)
    sources = list(dict.fromkeys(power["source"]))
    fig, axes = _figure(1, len(sources))
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
    _legend(fig, power["run"].nunique())
    return fig


def power_trace(report: ReportContents) -> Figure | None:
    return _power_panels(report, report.power, by_epoch=False)


def power_per_epoch(report: ReportContents) -> Figure | None:
    return _power_panels(report, report.power_epochs, by_epoch=True)


def _group_labels(methods: pd.DataFrame) -> list[str]:
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
    ax.set_xticks(x, _group_labels(methods), rotation=20, ha="right")
    ax.legend(frameon=False)


def phase_costs(report: ReportContents) -> Figure | None:
    methods = report.methods

    def has(column: str) -> bool:
        return f"{column}_mean" in methods and bool(methods[f"{column}_mean"].notna().any())

    flops = {c: p for p, c in FLOPS_OF_PHASE.items() if has(c)}
    energy = {f"energy_j_{p}": p for p in PHASES if has(f"energy_j_{p}")}
    if not (flops and energy):
        return None
    fig, (left, right) = _figure(1, 2, height=3.6)
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
    fig, (left, right) = _figure(1, 2, height=3.6)
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
    fig, axes = _figure(1, 2)
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
        colors = _colors(len(rows))
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
    _legend(fig, len(runs))
    return fig


def _reached(setups: pd.DataFrame) -> pd.Series:
    return (setups["target_status"] == "reached") & setups["energy_j_to_target_mean"].notna()


def energy_to_target(report: ReportContents) -> Figure | None:
    if report.setups.empty:
        return None
    setups = report.setups[report.setups["setup"] != NO_SETUP]
    if setups["setup"].nunique() < 2 or not _reached(setups).any():
        return None
    labels = _group_labels(setups)
    fig, (ax,) = _figure(height=0.3 * len(setups) + 1.2)
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
    fig, axes = _figure(1, len(labels), height=3.4)
    for ax, label in zip(axes, labels, strict=True):
        _heatmap(ax, setups[setups["method_label"] == label], setups, *fields)
        ax.set_title(label)
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
        for i, (run, color) in enumerate(zip(runs, _colors(len(runs)), strict=True)):
            layers_of_run = rows[rows["run"] == run].drop_duplicates("layer")
            kept = layers_of_run.set_index("layer")["kept"].reindex(names)
            ax.bar(x - 0.4 + width * (i + 1.5), kept, width, color=color, label=f"kept: {run}")
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("channels (or blocks)")
        ax.set_title(label)
        ax.legend(frameon=False)
    return fig


ChartMaker = Callable[[ReportContents], Figure | None]
CHARTS: tuple[tuple[str, str, str, ChartMaker], ...] = (
    (
        "training",
        "Accuracy and loss per epoch",
        "epochs.csv: run, epoch, accuracy, val_loss",
        training_curves,
    ),
    (
        "generation",
        "Validation denoising loss and fd_classifier per epoch (generation runs; "
        "fd_classifier is not Inception FID)",
        "epochs.csv: run, epoch, val_denoise_loss, fd_classifier",
        generation_curves,
    ),
    (
        "energy",
        "Energy per epoch and cumulative energy",
        "epochs.csv: run, epoch, energy_j, energy_j_cum",
        epoch_energy,
    ),
    (
        "tradeoff",
        "Accuracy against cumulative energy: every run epoch by epoch, each method's mean "
        "final point (error bars: std over seeds) and the Pareto front of the methods",
        "epochs.csv: run, accuracy, energy_j_cum; methods.csv: energy_j_mean and _std, "
        "final_accuracy_mean and _std",
        accuracy_energy,
    ),
    (
        "power",
        "Power trace: mean per time bin, band: min to max",
        "power/ of each run, downsampled: time_s, source, power_w, power_w_min, power_w_max",
        power_trace,
    ),
    (
        "power-epochs",
        "Power per epoch: mean, band: min to max",
        "power/ of each run, per epoch: epoch, source, power_w, power_w_min, power_w_max",
        power_per_epoch,
    ),
    (
        "phases",
        "FLOPs and joules per phase (mean over finished runs)",
        "methods.csv: flops_<phase>_mean, energy_j_<phase>_mean",
        phase_costs,
    ),
    (
        "savings",
        "Savings against the baseline (positive = the method used less), error bars: std "
        "over seeds",
        "methods.csv: <saving>_pct_mean and _std, accuracy_change_points_mean and _std",
        savings,
    ),
    (
        "target",
        "Energy to reach the target accuracy per setup",
        "setups.csv: energy_j_to_target_mean and _std, target_status",
        energy_to_target,
    ),
    (
        "heatmap",
        "Energy to target over the sweep grid, one map per method",
        "setups.csv: setup_*, energy_j_to_target_mean, target_status",
        target_heatmaps,
    ),
    (
        "prediction",
        "Actual against predicted time and energy of finished runs (line: equal; dotted: "
        "±10%; bars: the estimate's interval)",
        "summary.csv: predicted_time_s, _low, _high, time_s, predicted_energy_j, _low, "
        "_high, energy_j",
        predicted_vs_actual,
    ),
    (
        "gates",
        "Channels kept per layer by the gated methods' runs",
        "gates.csv: method_label, run, layer, channels, kept",
        kept_channels,
    ),
)


def render_charts(report: ReportContents) -> list[Chart]:
    """Every chart the report's data supports, in page order."""
    charts = []
    with mpl.rc_context(STYLE):
        for key, title, caption, make in CHARTS:
            fig = make(report)
            if fig is not None:
                charts.append(Chart(key, title, caption, _svg(fig, key), fig))
    return charts
