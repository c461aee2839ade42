from __future__ import annotations

import math
from pathlib import Path

import pytest

from ssprop_energy.errors import UserError
from ssprop_energy.reports import build_report
from tests.support.report_store import epoch_rows, write_run


def _run(report, name: str):
    return report.runs.set_index("run").loc[name]


def test_savings_against_the_dense_run_at_the_same_seed(store: Path) -> None:
    report = build_report([store])
    seed0 = _run(report, "ssprop keep=0.2 seed=0")
    assert seed0["baseline_run"] == "dense seed=0"
    assert seed0["energy_j"] == 300.0 and seed0["provenance"] == "estimated"
    assert seed0["energy_saving_pct"] == pytest.approx(60 / 360 * 100)
    assert seed0["time_saving_pct"] == pytest.approx(20.0)
    assert seed0["flops_backward_saving_pct"] == pytest.approx(80.0)
    # total per epoch: dense 1e9 + 2e9 + 1e8, ssProp 1e9 + 0.4e9 + 1e8
    assert seed0["flops_saving_pct"] == pytest.approx(1.6 / 3.1 * 100)
    assert seed0["accuracy_change_points"] == pytest.approx(-1.0)
    assert seed0["mean_keep"] == pytest.approx(0.2)
    assert _run(report, "ssprop keep=0.2 seed=1")["energy_saving_pct"] == pytest.approx(25.0)
    assert _run(report, "dense seed=0")["comparison_note"] == "baseline"


def test_per_phase_joules_per_gflop(store: Path) -> None:
    run = _run(build_report([store]), "dense seed=0")
    # backward: 40% of 3 x 120 J over 3 x 2e9 FLOPs
    assert run["energy_j_backward"] == pytest.approx(144.0)
    assert run["j_per_gflop_backward"] == pytest.approx(144.0 / 6.0)
    assert run["time_s_backward"] == pytest.approx(12.0)
    assert run["energy_j_above_idle"] == pytest.approx(360.0 - 15.0 * 30.0)
    ssprop = _run(build_report([store]), "ssprop keep=0.2 seed=0")
    # 144 J - 120 J saved over 6e9 - 1.2e9 FLOPs saved
    assert ssprop["j_per_gflop_saved_backward"] == pytest.approx(24.0 / 4.8)


def test_method_means_exclude_unfinished_runs_and_say_so(store: Path) -> None:
    methods = build_report([store]).methods.set_index("method_label")
    ssprop = methods.loc["ssprop keep=0.2"]
    assert (ssprop["n_runs"], ssprop["n_finished"], ssprop["n_excluded"]) == (3, 2, 1)
    assert ssprop["excluded"] == "ssprop keep=0.2 seed=2 (interrupted)"
    assert ssprop["energy_j_mean"] == pytest.approx(285.0)
    assert ssprop["energy_j_std"] == pytest.approx(math.sqrt(2 * 15.0**2))
    assert ssprop["energy_saving_pct_mean"] == pytest.approx((60 / 360 * 100 + 25.0) / 2)
    assert ssprop["accuracy_change_points_mean"] == pytest.approx(0.0, abs=1e-9)
    assert ssprop["provenance_gpu0"] == "measured"
    assert ssprop["provenance_cpu"] == "estimated"


def test_unfinished_runs_appear_with_their_status(store: Path) -> None:
    report = build_report([store])
    interrupted = _run(report, "ssprop keep=0.2 seed=2")
    assert interrupted["status"] == "interrupted" and interrupted["epochs_done"] == 1
    assert math.isnan(interrupted["energy_saving_pct"])
    assert any("excluded from means: ssprop keep=0.2 seed=2" in n for n in report.notes)


def test_headline_gives_the_paired_intervals_of_the_method_means(store: Path) -> None:
    # energy savings per seed 16.67% and 25%: mean 20.83; for two seeds sd / sqrt(2) is half
    # their difference, 4.167, and t(0.975, 1) = 12.706: half-width 52.94. Time saves 20% at
    # both seeds (sd 0), so its interval is one point
    report = build_report([store])
    assert report.headline == (
        "ssprop keep=0.2 vs dense: saves 80% backward FLOPs, 20% time (95% CI 20% to 20%), "
        "21% energy (estimated; 95% CI -32% to 74%, within noise); accuracy +0.0 points "
        "(95% CI -12.7 to +12.7, not significant); mean of 2 seeds, 95% paired t intervals"
    )
    ssprop = report.methods.set_index("method_label").loc["ssprop keep=0.2"]
    assert ssprop["n_pairs"] == 2
    half = 12.7062 * (25.0 - 50.0 / 3.0) / 2.0
    assert ssprop["energy_saving_pct_ci_low"] == pytest.approx(62.5 / 3.0 - half, abs=1e-3)
    assert ssprop["energy_saving_pct_ci_high"] == pytest.approx(62.5 / 3.0 + half, abs=1e-3)
    assert report.flags == ()


def test_energy_and_time_to_target_from_epoch_rows(store: Path) -> None:
    report = build_report([store], target_accuracy=0.7)
    dense, ssprop = _run(report, "dense seed=0"), _run(report, "ssprop keep=0.2 seed=1")
    assert dense["target_status"] == "reached" and dense["epochs_to_target"] == 3
    assert dense["energy_j_to_target"] == pytest.approx(360.0)
    assert ssprop["epochs_to_target"] == 3
    assert ssprop["energy_j_to_target"] == pytest.approx(270.0)
    assert ssprop["time_s_to_target"] == pytest.approx(24.0)
    assert ssprop["flops_total_to_target"] == pytest.approx(4.5e9)
    assert _run(report, "ssprop keep=0.2 seed=0")["target_status"] == "not_reached"
    assert math.isnan(_run(report, "ssprop keep=0.2 seed=0")["energy_j_to_target"])
    assert _run(report, "ssprop keep=0.2 seed=2")["target_status"] == "unknown"
    # one finished seed missed the target: the method has no mean energy to target
    methods = report.methods.set_index("method_label")
    assert math.isnan(methods.loc["ssprop keep=0.2", "energy_j_to_target_mean"])
    assert methods.loc["dense", "energy_j_to_target_mean"] == pytest.approx(360.0)
    assert report.setups.set_index("method_label").loc["ssprop keep=0.2", "target_status"] == (
        "partial"
    )


def test_target_comes_from_the_runs_when_not_given(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    rows = epoch_rows("a", [0.5, 0.8], 10.0, 1.0, 1.0, 1e6, 1.0)
    write_run(sweep, "a", method="dense", label="dense", seed=0, epochs=rows, target=0.75)
    report = build_report([sweep])
    assert report.target_accuracy == 0.75
    assert report.runs.loc[0, "energy_j_to_target"] == pytest.approx(22.0)


def test_different_provenance_over_seeds_is_flagged(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    for seed, label in ((0, "measured"), (1, "sampled")):
        rows = epoch_rows(f"r{seed}", [0.5], 10.0, 1.0, 1.0, 1e6, 1.0, gpu_provenance=label)
        write_run(
            sweep,
            f"r{seed}",
            method="dense",
            label="dense",
            seed=seed,
            epochs=rows,
            gpu_provenance=label,
        )
    report = build_report([sweep])
    assert report.methods.loc[0, "provenance_gpu0"] == "mixed: measured, sampled"
    assert any("provenance_gpu0 of dense is mixed: measured, sampled" in n for n in report.notes)


def test_a_missing_energy_cell_makes_the_total_unavailable(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    rows = epoch_rows("a", [0.5, 0.6], 10.0, 1.0, 1.0, 1e6, 1.0)
    rows.loc[1, ["energy_j_gpu0", "provenance_gpu0"]] = [math.nan, "unavailable"]
    write_run(sweep, "a", method="dense", label="dense", seed=0, epochs=rows)
    run = build_report([sweep]).runs.iloc[0]
    assert math.isnan(run["energy_j_gpu0"]) and run["provenance_gpu0"] == "unavailable"
    assert run["energy_j_cpu"] == pytest.approx(2.0) and run["provenance_cpu"] == "estimated"


def test_comparison_needs_a_finished_baseline(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    rows = epoch_rows("x", [0.5], 10.0, 1.0, 1.0, 1e6, 1.0)
    write_run(sweep, "d", method="dense", label="dense", seed=0, epochs=rows, status="diverged")
    write_run(sweep, "s", method="ssprop", label="ssprop", seed=0, epochs=rows)
    write_run(sweep, "t", method="ssprop", label="ssprop", seed=1, epochs=rows)
    runs = build_report([sweep]).runs.set_index("run_id")
    assert runs.loc["s", "comparison_note"] == "baseline diverged: not compared"
    assert runs.loc["t", "comparison_note"] == "no dense run at this seed and setup"
    assert math.isnan(runs.loc["s", "energy_saving_pct"])


def test_baseline_by_method_label_and_merging_folders(tmp_path: Path) -> None:
    dense_rows = epoch_rows("d", [0.5], 100.0, 0.0, 10.0, 1e6, 1.0)
    ssprop_rows = epoch_rows("s", [0.5], 50.0, 0.0, 10.0, 1e6, 0.5)
    write_run(tmp_path / "a", "d", method="dense", label="dense", seed=0, epochs=dense_rows)
    write_run(tmp_path / "b", "s", method="ssprop", label="half", seed=0, epochs=ssprop_rows)
    merged = build_report([tmp_path / "a", tmp_path / "b"]).runs.set_index("run_id")
    assert merged.loc["s", "energy_saving_pct"] == pytest.approx(50.0)
    against_half = build_report([tmp_path / "a", tmp_path / "b"], baseline="half")
    assert against_half.runs.set_index("run_id").loc["d", "energy_saving_pct"] == pytest.approx(
        -100.0
    )


def test_runs_of_different_models_are_neither_matched_nor_averaged(tmp_path: Path) -> None:
    rows = epoch_rows("x", [0.5], 10.0, 1.0, 1.0, 1e6, 1.0)
    for run_id, model in (("a", "cnn"), ("b", "resnet18")):
        write_run(
            tmp_path / "s",
            f"d{run_id}",
            method="dense",
            label="dense",
            seed=0,
            epochs=rows,
            model=model,
        )
    write_run(
        tmp_path / "s",
        "s",
        method="ssprop",
        label="ssprop",
        seed=0,
        epochs=epoch_rows("s", [0.5], 5.0, 1.0, 1.0, 1e6, 0.5),
        model="resnet18",
    )
    report = build_report([tmp_path / "s"])
    assert list(report.methods["model"]) == ["cnn", "resnet18", "resnet18"]
    assert list(report.methods["n_runs"]) == [1, 1, 1]
    ssprop = report.runs.set_index("run_id").loc["s"]
    assert ssprop["baseline_run"] == "s: dense seed=0 [db]"
    assert ssprop["energy_saving_pct"] == pytest.approx(5 / 11 * 100)


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_a_folder_that_is_not_a_store_is_one_error_naming_it(tmp_path: Path, make: str) -> None:
    target = tmp_path / "nothing"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    with pytest.raises(UserError, match="nothing"):
        build_report([target])


def test_target_accuracy_must_be_a_fraction(store: Path) -> None:
    with pytest.raises(ValueError, match="target accuracy"):
        build_report([store], target_accuracy=62.0)
