"""The report's charts as inline SVG, drawn with matplotlib (no script, no network, small):
the list of charts in page order, and their rendering. Every chart plots columns of the
report's CSV files; each :class:`Chart` names them in its caption. The charts themselves are
drawn by family (:mod:`.chart_runs`, :mod:`.chart_power`, :mod:`.chart_methods`,
:mod:`.chart_sweep`) with what :mod:`.chart_kit` shares.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import matplotlib as mpl
from matplotlib.figure import Figure

from .chart_kit import STYLE, Chart
from .chart_methods import kept_channels, phase_costs, predicted_vs_actual, savings
from .chart_power import power_per_epoch, power_trace
from .chart_runs import accuracy_energy, epoch_energy, generation_curves, training_curves
from .chart_sweep import energy_to_target, target_heatmaps
from .contents import ReportContents


def _svg(fig: Figure, key: str) -> str:
    buffer = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": key}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # drop the XML declaration and doctype
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)


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
