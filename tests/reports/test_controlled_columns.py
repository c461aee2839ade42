"""methods.csv's controlled columns pool every pair of a method's runs exactly."""

from __future__ import annotations

import math

import pandas as pd

from ssprop_energy.reports.controlled import method_columns
from ssprop_energy.stats import ratio_interval


def _run(logs: list[float], time_saving: float) -> dict[str, object]:
    ratios = [math.exp(v) for v in logs]
    interval = ratio_interval(ratios)
    return {
        "status": "finished",
        "controlled_stop": "budget",
        "controlled_pairs": len(logs),
        "time_log_ratio_controlled_mean": math.log(interval.ratio),
        "time_log_ratio_controlled_sd": interval.sd_log,
        "energy_log_ratio_controlled_mean": math.nan,
        "energy_log_ratio_controlled_sd": math.nan,
        "time_saving_pct": time_saving,
        "epochs_to_target": math.nan,
    }


def test_pooled_pairs_give_the_interval_of_all_pairs_together() -> None:
    a, b = [-0.30, -0.25, -0.35, -0.28], [-0.20, -0.33, -0.31]
    group = pd.DataFrame([_run(a, 20.0), _run(b, 30.0)])
    row = method_columns(group, pd.DataFrame())
    every = ratio_interval(math.exp(v) for v in a + b)
    assert row["controlled_pairs"] == 7 and row["controlled_stop"] == "budget"
    assert math.isclose(row["time_saving_controlled_pct"], (1 - every.ratio) * 100)
    assert math.isclose(row["time_saving_controlled_pct_ci_low"], (1 - every.high) * 100)
    assert math.isclose(row["time_saving_controlled_pct_ci_high"], (1 - every.low) * 100)
    assert row["time_controlled_mde_pct"] > 0 and row["controlled_pairs_for_5pct"] >= 2
    assert row["seeds_for_5pct"] >= 2  # two seeds of whole runs: their spread is known
    assert math.isnan(row["energy_saving_controlled_pct"])  # no energy figure: none shown
