"""Contention and noise flags, the estimate-equals-time note, and the sources' idle range."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ssprop_energy.reports import build_report
from tests.support.report_store import epoch_rows, write_run


def _with_load(sweep: Path, run_id: str, loads: list[float], times: list[float] | None = None):
    """Give the stored run's epochs other processes' CPU share (and, optionally, times)."""
    path = sweep / run_id / "epochs.csv"
    epochs = pd.read_csv(path)
    epochs["cpu_s_own"] = 1.0
    epochs["cpu_load_other"] = loads
    epochs["cpu_s_other"] = epochs["cpu_load_other"] * epochs["time_s"] * 2
    if times is not None:
        epochs["time_s"] = times
    epochs.to_csv(path, index=False)


def _set_meta(sweep: Path, run_id: str, **changes: Any) -> None:
    path = sweep / run_id / "meta.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        meta["energy"][key] = value
    path.write_text(json.dumps(meta))


def _quiet(store: Path) -> None:
    """Every finished run of the store on a quiet machine: 1% other load, equal epochs."""
    for run_id in ("dense0", "dense1", "ssprop0", "ssprop1"):
        _with_load(store, run_id, [0.01, 0.02, 0.01])


def test_on_a_quiet_machine_there_are_no_flags_and_the_headline_gives_the_interval(
    store: Path,
) -> None:
    _quiet(store)
    report = build_report([store])
    assert report.flags == ()
    assert "95% CI -32% to 74%, within noise" in report.headline
    assert "busy machine" not in report.headline
    runs = report.runs.set_index("run")
    assert runs.loc["dense seed=0", "noise_flags"] == ""
    # time-weighted over three 10 s epochs
    assert runs.loc["dense seed=0", "cpu_load_other"] == (0.01 + 0.02 + 0.01) / 3
    assert runs.loc["dense seed=0", "cpu_load_other_max"] == 0.02
    assert runs.loc["dense seed=0", "epoch_time_cv"] == 0.0


def test_a_run_on_a_busy_machine_is_flagged_in_the_notes_and_the_headline(store: Path) -> None:
    _quiet(store)
    _with_load(store, "ssprop1", [0.5, 0.4, 0.6])
    report = build_report([store])
    flag = (
        "busy machine: ssprop keep=0.2 seed=1: other processes used 50% of the CPU time while "
        "it trained (busiest epoch 60%; threshold 10%)"
    )
    assert report.flags == (flag,)
    assert flag in report.notes
    assert report.runs.set_index("run").loc["ssprop keep=0.2 seed=1", "noise_flags"] == (
        "busy_machine"
    )
    assert report.headline.endswith("; measured on a busy machine: see the flags")


def test_a_busy_baseline_flags_the_method_it_is_compared_with(store: Path) -> None:
    _quiet(store)
    _with_load(store, "dense0", [0.3, 0.3, 0.3])
    assert build_report([store]).headline.endswith("measured on a busy machine: see the flags")


def test_identical_epochs_of_very_different_length_are_flagged(store: Path) -> None:
    _quiet(store)
    _with_load(store, "dense1", [0.01, 0.01, 0.01], times=[1.5, 20.0, 8.5])
    report = build_report([store])
    # mean 10, sample sd sqrt(((8.5)^2 + 10^2 + 1.5^2) / 2) = 9.31
    assert report.flags == (
        "noisy epoch times: dense seed=1: identical epochs took 1.5 to 20 s (coefficient of "
        "variation 0.93; threshold 0.20)",
    )
    cv = report.runs.set_index("run").loc["dense seed=1", "epoch_time_cv"]
    assert abs(cv - (((8.5**2 + 10**2 + 1.5**2) / 2) ** 0.5) / 10) < 1e-12


def test_epochs_with_different_keeps_are_not_compared(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    rows = epoch_rows("a", [0.5, 0.6], 10.0, 1.0, 1.0, 1e6, 1.0)
    rows["keep"], rows["time_s"] = [1.0, 0.5], [1.0, 9.0]
    write_run(sweep, "a", method="dense", label="dense", seed=0, epochs=rows)
    report = build_report([sweep])
    assert report.flags == ()
    assert pd.isna(report.runs.loc[0, "epoch_time_cv"])


def test_idle_power_that_moved_between_runs_is_flagged_and_shown_as_a_range(store: Path) -> None:
    _quiet(store)
    for run_id, watts in (("dense0", 1.0), ("dense1", 7.6), ("ssprop0", 2.0), ("ssprop1", 3.0)):
        _set_meta(store, run_id, idle_power_w={"gpu0": 10.0, "cpu": watts})
    report = build_report([store])
    sources = report.energy_sources.set_index("source")
    assert list(report.energy_sources["source"]) == ["cpu", "gpu0"]  # one row per source
    cpu = sources.loc["cpu"]
    assert (cpu["n_runs"], cpu["n_idle"]) == (5, 5)  # the interrupted run idled at 5 W
    assert (cpu["idle_power_w_min"], cpu["idle_power_w_median"], cpu["idle_power_w_max"]) == (
        1.0,
        3.0,
        7.6,
    )
    assert report.flags == (
        "idle drift: cpu idled at 1 to 7.6 W over 5 runs ((max - min) / median 2.20; "
        "threshold 0.25): other load came and went between runs",
    )


def test_an_estimate_only_energy_saving_says_it_is_the_time_saving(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    for method, seconds in (("dense", 10.0), ("ssprop", 8.0)):
        for seed in (0, 1):
            run_id = f"{method}{seed}"
            rows = epoch_rows(run_id, [0.5, 0.6], 0.0, seconds * 2, seconds, 1e6, 1.0)
            rows = rows.drop(columns=[c for c in rows if c.endswith("gpu0")])
            write_run(sweep, run_id, method=method, label=method, seed=seed, epochs=rows)
            path = sweep / run_id / "meta.json"
            meta = json.loads(path.read_text())
            del meta["energy"]["sources"]["gpu0"], meta["energy"]["idle_power_w"]["gpu0"]
            path.write_text(json.dumps(meta))
    headline = build_report([sweep]).headline
    assert "20% energy (estimated; 95% CI 20% to 20%; a TDP-based estimate: by construction " in (
        headline
    )
    assert "this is the time saving)" in headline


def test_measured_energy_gets_no_estimate_note(store: Path) -> None:
    assert "by construction" not in build_report([store]).headline  # GPU measured


def test_one_seed_has_no_interval(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    for method, gpu_j in (("dense", 100.0), ("ssprop", 80.0)):
        rows = epoch_rows(method, [0.5], gpu_j, 20.0, 10.0, 1e9, 1.0)
        write_run(sweep, method, method=method, label=method, seed=0, epochs=rows)
    report = build_report([sweep])
    assert report.headline.endswith("; 1 seed: no interval (it needs two or more)")
    assert "CI" not in report.headline
    methods = report.methods.set_index("method_label")
    assert pd.isna(methods.loc["ssprop", "energy_saving_pct_ci_low"])
    assert methods.loc["ssprop", "n_pairs"] == 1


def test_empty_columns_are_named_in_the_notes_with_the_reason(store: Path) -> None:
    _quiet(store)
    for run_id in ("dense0", "dense1", "ssprop0", "ssprop1", "ssprop2"):
        path = store / run_id / "meta.json"
        meta = json.loads(path.read_text())
        meta["energy"]["sources"]["dram"] = {
            "provenance": "unavailable",
            "reason": "no RAPL DRAM zone",
            "device": "",
        }
        path.write_text(json.dumps(meta))
        epochs = pd.read_csv(store / run_id / "epochs.csv")
        epochs["energy_j_dram"], epochs["provenance_dram"] = float("nan"), "unavailable"
        epochs.to_csv(store / run_id / "epochs.csv", index=False)
    notes = build_report([store]).notes
    summary = next(n for n in notes if n.startswith("summary.csv: empty columns: "))
    assert "*_dram (source dram has no figure in any run: no RAPL DRAM zone)" in summary
    assert "target_accuracy, *_to_target* (no target accuracy)" in summary
    assert "params*, inference_* (no run has an inference.csv)" in summary
    methods = next(n for n in notes if n.startswith("methods.csv: empty columns: "))
    assert "excluded" not in methods  # an interrupted run is excluded
    assert "*_dram (source dram" in methods


def test_a_column_with_one_value_is_not_named(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    rows = epoch_rows("a", [0.5], 10.0, 1.0, 1.0, 1e6, 1.0)
    write_run(sweep, "a", method="dense", label="dense", seed=0, epochs=rows, target=0.4)
    notes = build_report([sweep]).notes
    setups = next(n for n in notes if n.startswith("setups.csv: "))
    assert "excluded (no run was left out of a mean)" in setups
    assert "_to_target" not in setups  # reached at epoch 1
    assert "rank, ratio_to_best, worst_to_best_ratio (no sweep point reached" in setups


def test_a_gpu_that_throttled_is_flagged_but_an_idle_one_is_not(store: Path) -> None:
    _quiet(store)
    for run_id, masks in (("dense1", [0x0, 0x40 | 0x1, 0x4]), ("dense0", [0x1, 0x1, 0x0])):
        path = store / run_id / "epochs.csv"
        epochs = pd.read_csv(path)
        epochs["gpu_temp_c_gpu0"] = [70.0, 88.0, 84.0]
        epochs["throttle_reasons_gpu0"] = masks
        epochs.to_csv(path, index=False)
    report = build_report([store])
    flag = "throttled: dense seed=1: gpu0 in epoch(s) 2, 3 (hw_thermal, sw_power_cap)"
    assert report.flags == (flag,)
    assert flag in report.notes
    runs = report.runs.set_index("run")
    assert runs.loc["dense seed=1", "noise_flags"] == "throttled"
    assert runs.loc["dense seed=0", "noise_flags"] == ""
