"""GPU hygiene under ``profile`` and ``estimate``, against the fake NVML: each epoch row
holds each GPU's temperature, SM clock, power limit and throttle reasons, a run whose
clocks were held down by power or heat is flagged, and ``energy.cooldown_s`` idles before
each run and between calibration blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ssprop_energy import estimate_sweep
from ssprop_energy.cli import app
from ssprop_energy.harness.calibration import plans
from ssprop_energy.harness.config import load_config, parse_config
from ssprop_energy.harness.run import metering, trainer
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.reports import sweep_report
from ssprop_energy.store import load_sweep
from tests.support.harness_configs import tiny_config, write_config
from tests.support.profiler_fakes import FakeGpu, FakeNvml

runner = CliRunner()


def fake_meter(gpu: FakeGpu) -> EnergyMeter:
    nvml = FakeNvml([gpu])
    return EnergyMeter(gpus="auto", cpu=None, codecarbon=False, interval_s=0.01, pynvml=nvml)  # type: ignore[arg-type]


def test_epochs_record_the_gpu_state_and_throttling_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu = FakeGpu("GPU-a", power_w=120.0, temperature_c=70)
    monkeypatch.setattr(trainer, "build_meter", lambda energy, device: fake_meter(gpu))
    config = write_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": 2},
                          inference={"enabled": False})  # fmt: skip
    (spec,) = plan_runs(load_config(config))
    sweep = tmp_path / "runs" / "tiny"

    def heat_up(row: dict[str, object]) -> None:  # after the first epoch: hot, power-capped
        gpu.temperature_c, gpu.sm_clock_mhz, gpu.throttle_reasons = 87, 1005, 0x40 | 0x4

    outcome = trainer.run_training(spec, sweep / spec.run_id, on_epoch=heat_up)
    assert outcome.status == "finished"
    (run,) = load_sweep(sweep)
    epochs = run.epochs
    assert epochs["gpu_temp_c_gpu0"].tolist() == [70.0, 87.0]
    assert epochs["sm_clock_mhz_gpu0"].tolist() == [1410.0, 1005.0]
    assert epochs["power_limit_w_gpu0"].tolist() == [400.0, 400.0]
    assert epochs["throttle_reasons_gpu0"].tolist() == [0, 0x44]
    report = sweep_report(sweep)
    assert report is not None
    (flag,) = [f for f in report.flags if f.startswith("throttled: ")]
    assert flag.endswith(": gpu0 in epoch(s) 2 (hw_thermal, sw_power_cap)")


def test_a_cpu_run_has_no_gpu_columns(tmp_path: Path) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": 1},
                          inference={"enabled": False})  # fmt: skip
    assert runner.invoke(app, ["profile", str(config), "-q"]).exit_code == 0
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert not [c for c in run.epochs.columns if c.startswith(("gpu_temp_c", "throttle"))]


def test_cooldown_idles_before_each_run_and_between_calibration_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    # one time module: calibration blocks (plans) and runs (metering) sleep through it
    assert plans.time is metering.time
    monkeypatch.setattr(plans.time, "sleep", slept.append)
    cfg = parse_config(tiny_config(tmp_path, energy={"cooldown_s": 2.5}))
    estimate = estimate_sweep(cfg, steps=3)
    blocks = len(estimate.calibration)  # keep 1.0, keep 0.5, one evaluation
    # no pause before the first step block nor before the first evaluation block
    assert slept == [2.5] * (blocks - 2)
    slept.clear()
    config = write_config(tmp_path / "p", energy={"cooldown_s": 2.5}, train={"epochs": 1},
                          inference={"enabled": False})  # fmt: skip
    assert runner.invoke(app, ["profile", str(config), "-q"]).exit_code == 0
    assert slept == [2.5, 2.5]  # one per run


def test_cooldown_does_not_change_the_run_id(tmp_path: Path) -> None:
    plain = plan_runs(parse_config(tiny_config(tmp_path)))
    cooled = plan_runs(parse_config(tiny_config(tmp_path, energy={"cooldown_s": 30})))
    assert [r.run_id for r in plain] == [r.run_id for r in cooled]


def test_a_negative_cooldown_is_one_error_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, energy={"cooldown_s": -1})
    result = runner.invoke(app, ["profile", str(config), "-q"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cooldown_s" in lines[0]
