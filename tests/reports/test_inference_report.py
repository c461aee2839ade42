"""Training and the final model's inference side by side; the gated layers' kept channels;
stores without inference.csv or gates.csv still report."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from ssprop_energy.errors import UserError
from ssprop_energy.reports import build_report, write_report
from ssprop_energy.reports.html import fmt, render_html
from tests.support.html_tables import Tables
from tests.support.report_store import green_store, two_method_store, write_inference

INFERENCE_SUMMARY = [
    "params",
    "inference_flops_per_sample",
    "inference_latency_ms_b1",
    "inference_time_s_per_1000_b1",
    "inference_energy_j_per_1000_b1",
    "provenance_inference_b1",
    "inference_latency_ms_btrain",
    "inference_time_s_per_1000_btrain",
    "inference_energy_j_per_1000_btrain",
    "provenance_inference_btrain",
]


def test_summary_has_inference_at_batch_1_and_the_training_batch(tmp_path: Path) -> None:
    report = build_report([green_store(tmp_path)])
    runs = report.runs.set_index("run_id")
    assert [c for c in runs.columns if c in INFERENCE_SUMMARY] == INFERENCE_SUMMARY
    gated = runs.loc["gated0"]
    assert gated["params"] == 5000 and gated["inference_flops_per_sample"] == 1e6
    assert gated["inference_latency_ms_b1"] == pytest.approx(1.2)
    assert gated["inference_latency_ms_btrain"] == pytest.approx(1.2 * 32**0.5)
    assert gated["inference_time_s_per_1000_btrain"] == pytest.approx(1.2 * 32**0.5 / 32)
    assert gated["inference_energy_j_per_1000_b1"] == pytest.approx(16.0)
    assert gated["inference_energy_j_per_1000_btrain"] == pytest.approx(16.0 / 32)
    assert gated["provenance_inference_b1"] == gated["provenance_inference_btrain"] == "estimated"
    assert runs.loc["dense1", "inference_energy_j_per_1000_b1"] == pytest.approx(31.0)


def test_method_means_and_spread_over_seeds(tmp_path: Path) -> None:
    methods = build_report([green_store(tmp_path)]).methods.set_index("method_label")
    gated = methods.loc["gated keep=0.5"]
    assert gated["params_mean"] == 5100 and gated["params_std"] == pytest.approx(math.sqrt(2e4))
    assert gated["inference_latency_ms_b1_mean"] == pytest.approx(1.3)
    assert gated["inference_latency_ms_b1_std"] == pytest.approx(math.sqrt(0.02))
    assert gated["inference_flops_per_sample_mean"] == pytest.approx(1.05e6)
    assert methods.loc["dense", "inference_flops_per_sample_std"] == 0
    assert gated["provenance_inference_b1"] == "estimated"


def test_a_run_without_inference_empties_its_methods_means_and_is_noted(tmp_path: Path) -> None:
    report = build_report([green_store(tmp_path, unmeasured=True)])
    dense = report.methods.set_index("method_label").loc["dense"]
    assert dense["n_finished"] == 3 and math.isnan(dense["inference_latency_ms_b1_mean"])
    assert not math.isnan(dense["energy_j_mean"])  # training figures are unaffected
    assert any("dense seed=2: no inference.csv" in note for note in report.notes)


def test_mixed_inference_provenance_is_flagged(tmp_path: Path) -> None:
    sweep = green_store(tmp_path)
    path = sweep / "gated1" / "inference.csv"
    pd.read_csv(path).assign(provenance="sampled").to_csv(path, index=False)
    report = build_report([sweep])
    gated = report.methods.set_index("method_label").loc["gated keep=0.5"]
    assert gated["provenance_inference_b1"] == "mixed: sampled, estimated"
    assert any("provenance_inference_btrain of gated keep=0.5" in n for n in report.notes)


def test_the_report_writes_inference_and_gates_tables_and_the_chart(tmp_path: Path) -> None:
    sweep = green_store(tmp_path)
    written = {p.name for p in write_report(build_report([sweep]), sweep)}
    assert {"inference.csv", "gates.csv"} <= written
    inference = pd.read_csv(sweep / "inference.csv")
    assert len(inference) == 8  # 4 runs x 2 batch sizes
    assert list(inference.columns[:9]) == [
        "run",
        "sweep",
        "method",
        "method_label",
        "seed",
        "setup",
        "status",
        "run_id",
        "batch_size",
    ]
    gates = pd.read_csv(sweep / "gates.csv")
    assert gates["run"].unique().tolist() == ["gated keep=0.5 seed=0", "gated keep=0.5 seed=1"]
    assert gates["kept"].tolist() == [8, 15, 9, 16] and gates["channels"].tolist() == [16, 32] * 2
    page = (sweep / "report.html").read_text(encoding="utf-8")
    assert 'id="chart-gates"' in page and "features.3" in page and "gates.csv: " in page


def test_the_side_by_side_table_shows_the_methods_csv_means(tmp_path: Path) -> None:
    sweep = green_store(tmp_path)
    write_report(build_report([sweep]), sweep)
    parser = Tables()
    parser.feed((sweep / "report.html").read_text(encoding="utf-8"))
    table = next(t for t in parser.tables if "side by side" in t["caption"])
    methods = pd.read_csv(sweep / "methods.csv", keep_default_na=False, na_values=[""])
    for column in ("final_accuracy", "energy_j", "emissions_kg", *INFERENCE_SUMMARY):
        assert column in table["head"], column
    for shown, (_, stored) in zip(table["rows"], methods.iterrows(), strict=True):
        for column, text in zip(table["head"], shown, strict=True):
            if f"{column}_mean" in methods:
                mean, std = fmt(stored[f"{column}_mean"]), fmt(stored[f"{column}_std"])
                assert text == (mean if std == "–" else f"{mean} ± {std}"), column
            else:
                assert text == fmt(stored[column]), column


def test_an_old_store_reports_without_inference_or_gates(tmp_path: Path) -> None:
    sweep = two_method_store(tmp_path / "runs")
    report = build_report([sweep])
    assert report.inference.empty and report.gates.empty
    assert (
        report.runs[INFERENCE_SUMMARY[:-1]]
        .drop(columns="provenance_inference_b1")
        .isna()
        .all()
        .all()
    )
    written = {p.name for p in write_report(report, sweep)}
    assert not {"inference.csv", "gates.csv"} & written
    page = render_html(report)
    assert 'id="chart-gates"' not in page and "side by side" not in page
    # no note per run: the empty inference columns are named once per file, with why
    about = [note for note in report.notes if "inference" in note]
    assert [note.split(":")[0] for note in about] == ["summary.csv", "methods.csv"]
    assert all("params*, inference_* (no run has an inference.csv)" in note for note in about)


def test_an_unknown_inference_provenance_is_one_error_naming_the_file(tmp_path: Path) -> None:
    sweep = green_store(tmp_path)
    path = sweep / "gated0" / "inference.csv"
    pd.read_csv(path).assign(provenance="guessed").to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        build_report([sweep])
    assert str(err.value).startswith(str(path))
    assert "unknown provenance label 'guessed'" in str(err.value)


@pytest.mark.parametrize(
    ("run", "file", "column"),
    [("gated0", "inference.csv", "latency_ms"), ("gated1", "gates.csv", "kept")],
)
def test_a_file_without_its_columns_leaves_its_run_out_with_a_note(
    tmp_path: Path, run: str, file: str, column: str
) -> None:
    sweep = green_store(tmp_path)
    path = sweep / run / file
    pd.read_csv(path).drop(columns=column).to_csv(path, index=False)
    report = build_report([sweep])
    assert run not in set(report.runs["run_id"])
    assert f"damaged, left out: {path}: no column {column!r}" in report.notes


def test_inference_savings_against_the_baseline_at_the_same_seed(tmp_path: Path) -> None:
    runs = build_report([green_store(tmp_path)]).runs.set_index("run_id")
    gated = runs.loc["gated1"]
    assert gated["baseline_run"] == "dense seed=1"
    assert gated["params_saving_pct"] == pytest.approx(48.0)  # 5,200 of 10,000
    assert gated["inference_flops_saving_pct"] == pytest.approx(45.0)  # 1.1e6 of 2e6
    assert gated["inference_energy_saving_pct_b1"] == pytest.approx((31 - 16) / 31 * 100)
    assert gated["inference_energy_saving_pct_btrain"] == pytest.approx((31 - 16) / 31 * 100)
    assert gated["provenance_inference_energy_saving_b1"] == "estimated"
    columns = list(runs.columns)
    saving = columns.index("inference_energy_saving_pct_b1")
    assert columns[saving + 1] == "provenance_inference_energy_saving_b1"


def test_no_inference_saving_when_one_side_has_no_figure(tmp_path: Path) -> None:
    sweep = two_method_store(tmp_path / "runs")
    write_inference(sweep / "ssprop0", 100, 1000, 1.0, 5.0)
    report = build_report([sweep])
    ssprop = report.runs.set_index("run_id").loc["ssprop0"]
    assert ssprop["comparison_note"] == "compared" and ssprop["energy_saving_pct"] > 0
    assert math.isnan(ssprop["inference_energy_saving_pct_b1"])
    assert ssprop["provenance_inference_energy_saving_b1"] == ""
    assert not any(" vs " in note for note in report.notes)  # no provenance flag either
