"""The charts: styles per method and seed, legends inside the figure, the accuracy-energy
trade-off and its Pareto front, epochs from 1, and the figure files."""

from __future__ import annotations

import os
import stat
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest
from matplotlib.figure import Figure

from ssprop_energy.reports import build_report, write_report
from ssprop_energy.reports.chart_kit import STYLE, run_styles
from ssprop_energy.reports.chart_methods import savings
from ssprop_energy.reports.chart_runs import accuracy_energy, pareto_front, training_curves
from ssprop_energy.reports.charts import CHARTS
from tests.support.report_store import epoch_rows, two_method_store, write_run

LONG = "ssprop keep=0.2 constant interleave warmup=2 skip_layers=[0, 3] min_keep=0.1 (long)"


def _legends_inside(fig: Figure) -> None:
    fig.draw_without_rendering()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    box = fig.bbox
    for legend in legends:
        extent = legend.get_window_extent()
        assert extent.x0 >= box.x0 - 0.5 and extent.x1 <= box.x1 + 0.5, (extent, box)
        assert extent.y0 >= box.y0 - 0.5 and extent.y1 <= box.y1 + 0.5, (extent, box)


def test_legends_lie_inside_the_figure_with_long_labels(tmp_path: Path) -> None:
    sweep = tmp_path / "long"
    for seed in (0, 1, 2):
        for method, label, gpu_j in (("dense", "dense", 100.0), ("ssprop", LONG, 70.0)):
            write_run(
                sweep,
                f"{method}{seed}",
                method=method,
                label=label,
                seed=seed,
                epochs=epoch_rows(f"{method}{seed}", [0.5, 0.6, 0.7], gpu_j, 20.0, 8.0, 1e9, 1.0),
            )
    report = build_report([sweep])
    drawn = 0
    with mpl.rc_context(STYLE), warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. constrained layout giving up: collapsed axes
        for key, _, _, make in CHARTS:
            fig = make(report)
            if fig is None or not (fig.legends or any(ax.get_legend() for ax in fig.axes)):
                continue
            _legends_inside(fig)
            drawn += 1
            if key == "tradeoff":  # a single-panel chart
                assert len(fig.axes) == 1
    assert drawn >= 5


def test_one_colour_per_method_one_line_style_per_seed(store: Path) -> None:
    report = build_report([store])
    styles = run_styles(report.runs)
    dense0, dense1 = styles["dense seed=0"], styles["dense seed=1"]
    sparse0, sparse1 = styles["ssprop keep=0.2 seed=0"], styles["ssprop keep=0.2 seed=1"]
    assert dense0.color == dense1.color and sparse0.color == sparse1.color
    assert dense0.color != sparse0.color
    assert dense0.linestyle == sparse0.linestyle != dense1.linestyle == sparse1.linestyle
    with mpl.rc_context(STYLE):
        fig = training_curves(report)
    assert fig is not None
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert lines["dense seed=0"].get_color() == lines["dense seed=1"].get_color()
    assert lines["dense seed=0"].get_linestyle() != lines["dense seed=1"].get_linestyle()


def test_epochs_are_counted_from_one(store: Path) -> None:
    report = build_report([store])
    assert report.epochs.groupby("run")["epoch"].min().eq(1).all()
    assert report.epochs.groupby("run")["epoch"].max()["dense seed=0"] == 3
    with mpl.rc_context(STYLE):
        fig = training_curves(report)
    assert fig is not None
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3]


def test_pareto_front_keeps_the_points_nothing_beats() -> None:
    cost = np.array([100.0, 80.0, 90.0, 120.0, np.nan, 80.0])
    score = np.array([0.70, 0.60, 0.65, 0.70, 0.99, 0.55])
    # 80 J / 0.60, then 90 J / 0.65, then 100 J / 0.70; 120 J / 0.70 and 80 J / 0.55 are beaten
    assert pareto_front(cost, score).tolist() == [1, 2, 0]
    assert pareto_front(np.array([np.nan]), np.array([0.5])).tolist() == []


def test_the_trade_off_chart_has_every_run_and_the_front(store: Path) -> None:
    report = build_report([store])
    with mpl.rc_context(STYLE):
        fig = accuracy_energy(report)
    assert fig is not None
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.lines]
    assert set(report.epochs["run"]) <= set(labels)
    front = next(line for line in ax.lines if line.get_label().startswith("Pareto"))
    # ssProp (seeds 0, 1: 285 J mean, accuracy 0.70) uses less energy than dense (360 J,
    # 0.70) at the same mean accuracy: the front is ssProp's point alone
    assert list(front.get_xdata()) == [285.0]
    dense = ax.lines[labels.index("dense seed=0")]
    assert list(dense.get_xdata()) == [120.0, 240.0, 360.0]


def test_savings_are_positive_when_the_method_uses_less(store: Path) -> None:
    report = build_report([store])
    with mpl.rc_context(STYLE):
        fig = savings(report)
    assert fig is not None
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights and all(h > 0 for h in heights)  # ssProp saves FLOPs, time and energy
    assert "positive = less" in fig.axes[0].get_ylabel()


@pytest.mark.figures
def test_figure_files_exist_and_open(tmp_path: Path) -> None:
    store = two_method_store(tmp_path / "runs")
    (store / "figures").mkdir()
    (store / "figures" / "heatmap.pdf").write_text("a chart this data no longer supports")
    old = os.umask(0o022)
    try:
        write_report(build_report([store]), store)
    finally:
        os.umask(old)
    figures = sorted((store / "figures").iterdir())
    keys = {p.stem for p in figures}
    assert keys == {"training", "energy", "tradeoff", "power", "phases", "savings"}
    for path in figures:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        if path.suffix == ".svg":
            root = ET.parse(path).getroot()
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            assert root.findall(".//{http://www.w3.org/2000/svg}text") or path.stem == "power"
        else:
            assert path.suffix == ".pdf"
            data = path.read_bytes()
            assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
            assert 2_000 < len(data) < 500_000


@pytest.mark.parametrize("key", ["training", "tradeoff"])
def test_a_figure_file_is_the_chart_on_the_page(tmp_path: Path, key: str) -> None:
    store = two_method_store(tmp_path / "runs")
    write_report(build_report([store]), store)
    page = (store / "report.html").read_text()
    svg = (store / "figures" / f"{key}.svg").read_text()
    assert f'<figure id="chart-{key}">' in page and svg in page


def test_a_legend_taller_than_the_figure_grows_the_figure(tmp_path: Path) -> None:
    sweep = tmp_path / "many"
    for seed in range(14):
        for method, label in (("dense", "dense"), ("ssprop", LONG)):
            write_run(
                sweep,
                f"{method}{seed}",
                method=method,
                label=label,
                seed=seed,
                epochs=epoch_rows(f"{method}{seed}", [0.5, 0.6], 90.0, 20.0, 8.0, 1e9, 1.0),
            )
    report = build_report([sweep])
    with mpl.rc_context(STYLE), warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = accuracy_energy(report)  # 28 runs, one column of long labels
        assert fig is not None
        _legends_inside(fig)
    assert fig.get_figheight() > 3.6  # grown for its legend


@pytest.mark.parametrize("status", ["diverged", "failed", "interrupted", "running"])
def test_a_run_without_a_power_trace_beside_runs_with_one_is_left_out_with_a_note(
    tmp_path: Path, status: str
) -> None:
    """A run that ended (or is still) in its first epoch has no power readings: the report is
    built from the others, its power charts drawn, and a note names the run without a trace."""
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        write_run(
            sweep,
            f"ok{seed}",
            method="dense",
            label="dense",
            seed=seed,
            epochs=epoch_rows(f"ok{seed}", [0.5, 0.6], 100.0, 20.0, 8.0, 1e9, 1.0),
        )
    early = write_run(
        sweep, "early", method="dense", label="dense", seed=2, status=status,
        epochs=epoch_rows("early", [], 100.0, 20.0, 8.0, 1e9, 1.0),
    )  # fmt: skip
    (early / "power.csv").unlink()
    report = build_report([sweep])
    assert any(n.startswith("no power trace") and "seed=2" in n for n in report.notes)
    assert report.power["power_w"].dtype.kind == "f"
    written = {p.name for p in write_report(report, tmp_path / "out")}
    assert {"report.html", "power.svg", "summary.csv"} <= written
