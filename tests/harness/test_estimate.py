"""``estimate``: the prediction arithmetic per schedule, exact predictions under a fake meter
with known per-phase power, the estimate recorded by ``profile`` and shown by the report,
and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from ssprop_energy import estimate_sweep
from ssprop_energy.cli import app
from ssprop_energy.harness.calibration import estimate, loop
from ssprop_energy.harness.calibration import prices as calibrate
from ssprop_energy.harness.calibration.estimate import (
    flop_counts,
    interval,
    keep_shares,
    predict_time_energy,
    scaled_part,
)
from ssprop_energy.harness.calibration.plans import batch_sizes, step_counts
from ssprop_energy.harness.calibration.prices import MIN_STEPS, Prices
from ssprop_energy.harness.config import parse_config
from ssprop_energy.profilers import Measurement, SourceInfo
from ssprop_energy.sparse import DropScheduler
from ssprop_energy.stats import LEVEL as INTERVAL
from ssprop_energy.store import load_sweep
from tests.support.harness_configs import tiny_config, write_config

runner = CliRunner()


def _prices(fixed: list[float], scaled: list[float], samples: int = 64) -> Prices:
    """Prices of one unit with the same values for time and for a ``cpu`` source."""
    prices = Prices(samples)
    for f, s in zip(fixed, scaled, strict=True):
        values = {"time_s": f, "energy_j": 10 * f, "cpu": 10 * f}
        parts = {"time_s": s, "energy_j": 10 * s, "cpu": 10 * s}
        prices.add(values, parts, {"cpu": "measured"})
    return prices


EVAL = _prices([0.0, 0.0], [0.05, 0.05])  # 0.05 s per evaluation batch of 64 samples


def _predict(scheduler: DropScheduler, epochs: int, sizes: list[int], steps: dict) -> float:
    shares = keep_shares(step_counts(scheduler, epochs, sizes), 64)
    val_sizes = [64, 16]
    fractions = epochs * sum(val_sizes) / 64
    total, low, high = predict_time_energy(
        shares, steps, EVAL, epochs * len(val_sizes), fractions, epochs * 0.01, "time_s"
    )
    assert low == total == high  # no spread in these prices
    return total


def test_constant_schedule_prices_every_step_with_its_samples() -> None:
    scheduler = DropScheduler("constant", 0.2, epochs=3)
    counts = step_counts(scheduler, 3, [64, 64, 32])
    assert counts == {(0.2, 64): 6, (0.2, 32): 3}
    assert keep_shares(counts, 64) == {0.2: (9, 7.5)}
    steps = {0.2: _prices([0.1, 0.1], [0.2, 0.2])}
    # 9 steps pay the fixed 0.1 s; 7.5 full batches pay the scaled 0.2 s; evaluation: 3
    # epochs x 80 samples at 0.05 s per 64; the epoch extras: 3 x 0.01 s
    expected = 9 * 0.1 + 7.5 * 0.2 + 3 * 80 / 64 * 0.05 + 0.03
    assert _predict(scheduler, 3, [64, 64, 32], steps) == pytest.approx(expected)


def test_interleaved_schedule_alternates_dense_and_sparse_prices() -> None:
    scheduler = DropScheduler("constant", 0.2, epochs=4, interleave=True)
    assert keep_shares(step_counts(scheduler, 4, [64, 64]), 64) == {1.0: (4, 4.0), 0.2: (4, 4.0)}
    steps = {1.0: _prices([0.1], [0.3]), 0.2: _prices([0.1], [0.1])}
    expected = 4 * 0.4 + 4 * 0.2 + 4 * 80 / 64 * 0.05 + 0.04
    assert _predict(scheduler, 4, [64, 64], steps) == pytest.approx(expected)


def test_warmup_epochs_are_priced_dense() -> None:
    scheduler = DropScheduler("constant", 0.5, epochs=5, warmup=2)
    assert keep_shares(step_counts(scheduler, 5, [64]), 64) == {1.0: (2, 2.0), 0.5: (3, 3.0)}
    steps = {1.0: _prices([0.2], [0.6]), 0.5: _prices([0.2], [0.3])}
    expected = 2 * 0.8 + 3 * 0.5 + 5 * 80 / 64 * 0.05 + 0.05
    assert _predict(scheduler, 5, [64], steps) == pytest.approx(expected)


def test_by_iteration_schedule_prices_each_step_at_its_own_keep() -> None:
    scheduler = DropScheduler("bar", 0.5, 0.25, epochs=2, by="iteration", period=4)
    assert scheduler.epoch_keeps(0, 4) == [0.5, 0.5, 0.25, 0.25]
    counts = step_counts(scheduler, 2, [64, 64, 64, 16])
    assert counts == {(0.5, 64): 4, (0.25, 64): 2, (0.25, 16): 2}
    assert keep_shares(counts, 64) == {0.5: (4, 4.0), 0.25: (4, 2.5)}
    steps = {0.5: _prices([0.1], [0.4]), 0.25: _prices([0.1], [0.2])}
    expected = 4 * 0.5 + (4 * 0.1 + 2.5 * 0.2) + 2 * 80 / 64 * 0.05 + 0.02
    assert _predict(scheduler, 2, [64, 64, 64, 16], steps) == pytest.approx(expected)


def test_interval_adds_the_error_of_the_mean_and_the_runs_own_spread() -> None:
    part = scaled_part([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], count=10, fraction_sum=10)
    assert part.value == pytest.approx(20.0)
    assert part.var == pytest.approx(100 * 1.0 / 3 + 10 * 1.0)  # s**2 = 1
    total, low, high = interval([part, estimate.Part(5.0)])
    half = stats.t.ppf(0.5 + INTERVAL / 2, 2) * math.sqrt(100 / 3 + 10)
    assert (total, high) == pytest.approx((25.0, 25.0 + half))
    assert low == pytest.approx(max(0.0, 25.0 - half))


def test_a_source_without_a_figure_predicts_nothing_for_it() -> None:
    steps = {1.0: _prices([0.1], [0.1])}
    shares = {1.0: (3, 3.0)}
    result = predict_time_energy(shares, steps, EVAL, 1, 1.0, 0.0, "gpu0")
    assert all(math.isnan(v) for v in result)


def test_batch_sizes_end_with_the_short_batch() -> None:
    assert batch_sizes(64, 24) == [24, 24, 16]
    assert batch_sizes(16, 24) == [16]


# -- a fake meter with known per-phase power: exact predictions --------------------------

SECONDS = {"data": 0.01, "forward": 0.1, "backward": 0.2, "optimizer": 0.05, "eval": 0.04}
WATTS = {"data": 10.0, "forward": 100.0, "backward": 150.0, "optimizer": 20.0, "eval": 80.0}
INTENSITY = 400.0


class FakeMeter:
    """Each phase window takes its ``SECONDS`` on a fake clock at its ``WATTS``; other
    windows (``calibration``) span the phases inside them."""

    carbon_intensity_g_per_kwh = INTENSITY

    def __init__(self) -> None:
        self.sources = [SourceInfo("gpu0", "measured", None, "fake GPU")]
        self.now = 0.0
        self.joules = 0.0
        self.open: dict[str, tuple[float, float]] = {}
        self.sums: dict[str, Measurement] = {}

    def __enter__(self) -> FakeMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def perf_counter(self) -> float:
        return self.now

    def begin(self, name: str) -> None:
        self.open[name] = (self.now, self.joules)

    def end(self, name: str) -> Measurement:
        if name in SECONDS:
            self.now += SECONDS[name]
            self.joules += WATTS[name] * SECONDS[name]
        t0, j0 = self.open.pop(name)
        m = Measurement(name, self.now - t0, {"gpu0": self.joules - j0}, {"gpu0": "measured"})
        self.sums[name] = self.sums[name] + m if name in self.sums else m
        return m

    def totals(self, name: str) -> Measurement | None:
        return self.sums.get(name)

    def emissions_kg(self, energy_j: float) -> float:
        return energy_j / 3.6e6 * INTENSITY / 1000


@pytest.fixture
def fake_meter(monkeypatch: pytest.MonkeyPatch) -> FakeMeter:
    meter = FakeMeter()
    monkeypatch.setattr(estimate, "build_meter", lambda energy, device: meter)
    monkeypatch.setattr(calibrate, "time", SimpleNamespace(perf_counter=meter.perf_counter))
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=meter.perf_counter))
    return meter


def _tiny(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    # 80 synthetic samples: 64 to train in batches of 24, 24, 16; 16 to validate
    return tiny_config(tmp_path, data={"batch_size": 24}, **overrides)


def test_fake_meter_gives_exact_predictions(tmp_path: Path, fake_meter: FakeMeter) -> None:
    cfg = parse_config(_tiny(tmp_path))
    result = estimate_sweep(cfg, steps=8)
    step = {p: SECONDS[p] for p in ("data", "forward", "backward", "optimizer")}
    scaled_s = step["data"] + step["forward"] + step["backward"]
    scaled_j = sum(WATTS[p] * step[p] for p in ("data", "forward", "backward"))
    fixed_j = WATTS["optimizer"] * step["optimizer"]
    # per epoch: two full steps, one of 16/24 samples (its optimizer step costs in full),
    # one evaluation batch of the 16 validation samples
    epoch_s = 2 * sum(step.values()) + step["optimizer"] + scaled_s * 16 / 24 + SECONDS["eval"]
    epoch_j = 2 * (scaled_j + fixed_j) + fixed_j + scaled_j * 16 / 24
    epoch_j += WATTS["eval"] * SECONDS["eval"]
    runs = result.runs
    assert len(runs) == 2
    for _, row in runs.iterrows():
        assert row["time_s"] == pytest.approx(2 * epoch_s)
        assert (row["time_s_low"], row["time_s_high"]) == pytest.approx((row["time_s"],) * 2)
        assert row["energy_j"] == pytest.approx(2 * epoch_j)
        assert row["energy_j_gpu0"] == pytest.approx(2 * epoch_j)
        assert row["emissions_kg"] == pytest.approx(2 * epoch_j / 3.6e6 * INTENSITY / 1000)
        assert (row["provenance"], row["provenance_gpu0"]) == ("measured", "measured")
        assert row["steps"] == 6
    sparse = runs[runs["method_label"].str.startswith("ssprop")].iloc[0]
    assert sparse["mean_keep"] == pytest.approx(0.75)
    assert sparse["flops_backward"] < runs.iloc[0]["flops_backward"]
    # no spread: every keep stops at the fewest steps; keep 1.0 is priced once for both runs
    table = result.calibration.set_index("unit")
    steps = table.loc["step"]
    assert steps["units"].tolist() == [MIN_STEPS, MIN_STEPS]
    assert steps["stopped"].tolist() == ["rse", "rse"]
    assert steps["runs"].tolist() == [2, 1]
    assert table.loc["eval_batch", "time_s_per_unit"] == pytest.approx(SECONDS["eval"])
    assert result.energy_j == pytest.approx(fake_meter.sums["calibration"].energy_j["gpu0"])
    written = pd.read_csv(result.sweep_dir / "estimate.csv")
    assert written["run_id"].tolist() == runs["run_id"].tolist()


def test_profile_records_the_estimate_and_the_report_compares(
    tmp_path: Path, fake_meter: FakeMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "model.yaml"
    config.write_text(json.dumps(_tiny(tmp_path)))
    result = runner.invoke(app, ["estimate", str(config), "--steps", "6"])
    assert result.exit_code == 0, result.output
    assert "calibration:" in result.output and "estimate.csv" in result.output
    monkeypatch.undo()  # train with the real meter and clock
    assert runner.invoke(app, ["profile", str(config), "-q"]).exit_code == 0
    sweep = tmp_path / "runs" / "tiny"
    predicted = pd.read_csv(sweep / "estimate.csv").set_index("run_id")
    summary = pd.read_csv(sweep / "summary.csv").set_index("run_id")
    for record in load_sweep(sweep):
        row = predicted.loc[record.run_id]
        assert record.meta.estimate.time_s == pytest.approx(row["time_s"])
        assert record.meta.estimate.provenance == "measured"
        actual = summary.loc[record.run_id]
        assert actual["predicted_energy_j"] == pytest.approx(row["energy_j"])
        error = 100 * (row["time_s"] - actual["time_s"]) / actual["time_s"]
        assert actual["prediction_error_time_pct"] == pytest.approx(error)
        # the FLOPs follow the same rule before and during training
        assert actual["flops_total"] == row["flops_total"]
    page = (sweep / "report.html").read_text()
    assert 'id="chart-prediction"' in page and "prediction_error_time_pct" in page


def test_report_without_estimates_shows_no_prediction(tmp_path: Path) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": 1})
    assert runner.invoke(app, ["profile", str(config), "-q"]).exit_code == 0
    sweep = tmp_path / "runs" / "tiny"
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["predicted_time_s"].isna().all()
    page = (sweep / "report.html").read_text()
    assert "chart-prediction" not in page and "prediction_error_time_pct" not in page
    assert "predicted_*, prediction_* (no run was estimated before training)" in page


# -- bad input: one error line, exit 2, nothing written ----------------------------------


def _one_error(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_bad_input_is_one_error_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    _one_error(runner.invoke(app, ["estimate", str(tmp_path / "no.yaml")]), "no such config")
    _one_error(runner.invoke(app, ["estimate", str(config), "--steps", "1"]), "--steps")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    _one_error(runner.invoke(app, ["estimate", str(bad)]), "malformed YAML")
    keep0 = write_config(tmp_path / "k", methods=[{"name": "ssprop", "keep": 0}])
    _one_error(runner.invoke(app, ["estimate", str(keep0)]), "keep")
    blocked = tmp_path / "file"
    blocked.write_text("")
    _one_error(runner.invoke(app, ["estimate", str(config), "--out", str(blocked)]), "file")
    assert not (tmp_path / "runs").exists()


def test_a_damaged_estimate_stops_profile_before_training(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    sweep = tmp_path / "runs" / "tiny"
    sweep.mkdir(parents=True)
    (sweep / "estimate.csv").write_text("run_id,time_s\nabc,1.0\n")
    _one_error(runner.invoke(app, ["profile", str(config), "-q"]), "estimate.csv", "no column")
    (sweep / "estimate.csv").write_text("run_id,time_s,energy_j\nabc,1.0,2")
    _one_error(runner.invoke(app, ["profile", str(config), "-q"]), "estimate.csv", "cut off")
    assert [p.name for p in sweep.iterdir()] == ["estimate.csv"]


def test_steps_are_priced_in_the_trainers_epoch_loop(
    tmp_path: Path, fake_meter: FakeMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    epochs: list[int] = []
    real = loop.train_epoch

    def counted(ctx: Any, spec: Any, meter: Any, epoch: int, on_step: Any = None) -> Any:
        epochs.append(epoch)
        return real(ctx, spec, meter, epoch, on_step)

    monkeypatch.setattr(loop, "train_epoch", counted)
    result = estimate_sweep(parse_config(_tiny(tmp_path)), steps=8)
    # 2 warm-up and 5 measured full steps at each keep, 2 full steps per epoch (the short
    # third is not measured): 4 epochs of the loop per keep
    assert len(epochs) == 8
    steps = result.calibration.set_index("unit").loc["step"]
    assert steps["units"].tolist() == [MIN_STEPS, MIN_STEPS]


def test_a_schedule_the_loop_cannot_price_falls_back_to_isolated_steps(
    tmp_path: Path, fake_meter: FakeMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "LOOP_STEP_FACTOR", 0)  # the loop gives up at its first step
    result = estimate_sweep(parse_config(_tiny(tmp_path)), steps=8)
    steps = result.calibration.set_index("unit").loc["step"]
    assert steps["units"].tolist() == [MIN_STEPS, MIN_STEPS]
    assert steps["stopped"].tolist() == ["rse", "rse"]


def test_a_run_counts_each_of_its_flop_shapes_once() -> None:
    plan = SimpleNamespace(counts={(1.0, 24): 4, (1.0, 16): 2, (0.5, 24): 2, (0.5, 16): 1},
                           val_sizes=[16])  # fmt: skip
    # (1.0, 24), (1.0, 16), (0.5, 24), (0.5, 16); validation (1.0, 16) already counted
    assert flop_counts(plan) == 4  # type: ignore[arg-type]
