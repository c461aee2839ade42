from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from ssprop_energy.reports import build_report, write_report
from ssprop_energy.reports.charts import render_charts
from tests.support.report_store import grid_store, two_method_store


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    return grid_store(tmp_path / "runs")


def test_setups_are_ranked_by_energy_to_target(grid: Path) -> None:
    setups = build_report([grid]).setups
    dense = setups[setups["method_label"] == "dense"].set_index("setup")
    assert dense.loc["batch_size=64, lr=0.1", "energy_j_to_target_mean"] == pytest.approx(100.0)
    assert dense.loc["batch_size=32, lr=0.1", "energy_j_to_target_mean"] == pytest.approx(240.0)
    assert dense.loc["batch_size=64, lr=0.01", "energy_j_to_target_mean"] == pytest.approx(600.0)
    assert dense["rank"].fillna(0).to_dict() == {
        "batch_size=64, lr=0.1": 1,
        "batch_size=32, lr=0.1": 2,
        "batch_size=64, lr=0.01": 3,
        "batch_size=32, lr=0.01": 0,  # never reached: not ranked
    }
    assert dense.loc["batch_size=64, lr=0.01", "ratio_to_best"] == pytest.approx(6.0)
    assert list(dense["worst_to_best_ratio"].dropna()) == pytest.approx([6.0, 6.0, 6.0])
    assert dense.loc["batch_size=64, lr=0.1", "time_s_to_target_mean"] == pytest.approx(5.0)
    assert dense.loc["batch_size=64, lr=0.1", "flops_total_to_target_mean"] == pytest.approx(3.1e9)


def test_a_setup_that_never_reached_the_target_is_not_zero(grid: Path, tmp_path: Path) -> None:
    report = build_report([grid])
    never = report.setups.set_index(["method_label", "setup"]).loc[
        ("dense", "batch_size=32, lr=0.01")
    ]
    assert never["target_status"] == "not_reached"
    assert math.isnan(never["energy_j_to_target_mean"]) and pd.isna(never["rank"])
    write_report(report, tmp_path / "out")
    stored = pd.read_csv(tmp_path / "out" / "setups.csv").set_index("setup")
    assert pd.isna(stored.loc["batch_size=32, lr=0.01", "energy_j_to_target_mean"])


def test_the_sweep_headline_gives_the_worst_to_best_ratio(grid: Path) -> None:
    lines = build_report([grid]).highlights
    assert (
        "dense: energy to target varies 6.00x across 3 setups that reached it; best: "
        "batch_size=64, lr=0.1" in lines
    )


def test_one_heat_map_per_method_marks_setups_without_the_target(grid: Path) -> None:
    charts = {c.key: c for c in render_charts(build_report([grid]))}
    heatmap = charts["heatmap"].svg
    assert heatmap.count("not reached") == 1
    assert heatmap.count("no run") == 3  # ssProp ran one of the four grid points
    assert "100 J" in heatmap and "600 J" in heatmap
    assert ">dense<" in heatmap and ">ssprop keep=0.2<" in heatmap
    assert "not reached" in charts["target"].svg


def test_runs_outside_the_sweep_are_listed_but_not_ranked(grid: Path, tmp_path: Path) -> None:
    setups = build_report([grid, two_method_store(tmp_path / "other")]).setups
    alone = setups[(setups["method_label"] == "dense") & (setups["setup"] == "-")].iloc[0]
    assert alone["target_status"] == "reached" and pd.isna(alone["rank"])
    dense = setups[setups["method_label"] == "dense"]
    assert list(dense["worst_to_best_ratio"].dropna()) == pytest.approx([6.0, 6.0, 6.0])
