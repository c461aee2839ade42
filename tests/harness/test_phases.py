"""The differential phase calibration against a fake NVML with real semantics (a millijoule
counter updating every 100 ms, power as a one-second mean) on a simulated clock: a model
whose forward, backward and optimizer make the fake GPU draw different, known powers."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from ssprop_energy import estimate_sweep, profile, run_sweep
from ssprop_energy.errors import UserError
from ssprop_energy.harness.calibration import phases
from ssprop_energy.harness.calibration.phases import CALIBRATED, measure_blocks
from ssprop_energy.harness.calibration.plans import plan_sweep
from ssprop_energy.harness.config import ProfileConfig, parse_config
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.profilers import EnergyMeter, Measurement
from ssprop_energy.reports.phases import calibrated_phases
from ssprop_energy.store import RunMeta, RunRecord, read_meta
from tests.support.harness_configs import tiny_config
from tests.support.profiler_fakes import FakeCarbon, FakeCpuModel, FakeGpu, FakeNvml

PHASE_S = {"forward": 0.08, "backward": 0.09, "optimizer": 0.06}
POWER_W = {"forward": 100.0, "backward": 300.0, "optimizer": 200.0}
TRUTH_J = {p: PHASE_S[p] * POWER_W[p] for p in CALIBRATED}


@dataclass
class Sim:
    """Simulated time: ``run`` draws a power for some seconds and takes the meter's readings
    every ``interval_s``, as its sampler thread would."""

    t: float = 0.0
    interval_s: float = 0.1
    next_tick: float = 0.1
    gpu: FakeGpu | None = None
    meter: EnergyMeter | None = None
    log: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self) -> float:
        return self.t

    def run(self, phase: str) -> None:
        assert self.meter is not None
        if self.gpu is not None:
            self.gpu.set_power(POWER_W[phase])
        end = self.t + PHASE_S[phase]
        while self.t < end:
            self.t = min(end, self.next_tick)
            if self.t >= self.next_tick:
                self.meter.sample()
                self.next_tick += self.interval_s
        if self.gpu is not None:
            self.gpu.set_power(0.0)


class _Phased(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, sim):
        ctx.sim = sim
        sim.run("forward")
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.sim.run("backward")
        return grad, None


class PhasedModel(torch.nn.Module):
    """The run's model, whose forward and backward take simulated time at their power."""

    def __init__(self, inner: torch.nn.Module, sim: Sim) -> None:
        super().__init__()
        self.inner, self.sim = inner, sim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Phased.apply(self.inner(x), self.sim)


def _plan(tmp_path, **energy):
    cfg = parse_config(tiny_config(tmp_path, energy={**energy}, methods=[{"name": "dense"}]))
    (plan,) = plan_sweep(plan_runs(cfg))
    return plan


def _simulated(plan, gpu: bool = True) -> EnergyMeter:
    """The plan's run on a simulated clock, metered on a fake GPU (else on a CPU model)."""
    sim = Sim()
    if gpu:
        sim.gpu = FakeGpu("GPU-0", power_w=0.0, clock=sim, power_mean_s=1.0)
        sim.meter = EnergyMeter(
            gpus=[0], cpu=None, codecarbon=False, pynvml=FakeNvml([sim.gpu]), clock=sim,
            sync=lambda: None,
        )  # fmt: skip
    else:
        sim.meter = EnergyMeter(
            gpus=None, cpu="codecarbon", codecarbon=True, clock=sim, sync=lambda: None
        )
    ctx = plan.ctx  # a linear model: its real seconds are few, its simulated ones known
    ctx.replace_model(
        PhasedModel(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)), sim)
    )
    ctx.optimizer.register_step_pre_hook(lambda *_: sim.run("optimizer"))
    return sim.meter


def test_calibrated_phases_are_within_3_percent_where_windows_are_off_by_the_power_ratio(
    tmp_path,
):
    plan = _plan(tmp_path)
    meter = _simulated(plan)
    with meter:
        blocks = measure_blocks(plan, meter, (0, 0))
    prices = {p.phase: p for p in blocks.prices()}
    step_s = sum(PHASE_S.values())
    mean_w = sum(TRUTH_J.values()) / step_s
    for phase in CALIBRATED:
        price = prices[phase]
        assert price.provenance == "measured"
        assert price.energy_j == pytest.approx(TRUTH_J[phase], rel=0.03), phase
        assert price.energy_j_low <= TRUTH_J[phase] <= price.energy_j_high
        assert price.time_s == pytest.approx(PHASE_S[phase], rel=0.01)
        # the phase's own windows are split by time: the step's mean power, not the phase's
        assert price.windowed_provenance == "split"
        ratio = price.windowed_j / TRUTH_J[phase]
        assert ratio == pytest.approx(mean_w / POWER_W[phase], rel=0.1), phase
    assert prices["forward"].windowed_j > 2 * TRUTH_J["forward"]
    assert prices["backward"].windowed_j < 0.75 * TRUTH_J["backward"]
    for kind in CALIBRATED:  # every block lasts at least MIN_PERIODS counter updates
        assert all(m.time_s >= 0.95 * phases.MIN_PERIODS * 0.1 for m in blocks.blocks[kind])


def test_a_phase_within_its_own_noise_has_no_figure_and_says_so() -> None:
    def block(joules: float, noise: float) -> list[Measurement]:
        return [
            Measurement("b", 1.0, {"gpu0": joules + d}, {"gpu0": "measured"})
            for d in (-noise, 0.0, noise)
        ]

    blocks = phases.PhaseBlocks(
        {k: 1 for k in CALIBRATED},
        {"forward": block(10, 0.5), "backward": block(30, 0.5), "optimizer": block(30.2, 2)},
    )
    prices = {p.phase: p for p in blocks.prices()}
    assert prices["backward"].energy_j == pytest.approx(20)
    assert prices["backward"].note == ""
    optimizer = prices["optimizer"]
    assert math.isnan(optimizer.energy_j)
    assert optimizer.energy_j_low < 0 < optimizer.energy_j_high
    assert optimizer.note.startswith("within its own noise: 95% CI")
    assert optimizer.provenance == "measured"


def test_on_the_cpu_model_the_calibrated_figure_stays_estimated(tmp_path, monkeypatch):
    plan = _plan(tmp_path)
    carbon = _FakeRun(FakeCpuModel(40.0))
    monkeypatch.setattr("ssprop_energy.profilers.meter.CodeCarbonRun", lambda *_: carbon)
    meter = _simulated(plan, gpu=False)
    with meter:
        blocks = measure_blocks(plan, meter, (0, 0), repeats=2)
    prices = blocks.prices()
    assert {p.provenance for p in prices} == {"estimated"}
    assert [p.phase for p in prices] == list(CALIBRATED)


class _FakeRun(FakeCarbon):
    """A started and stopped ``CodeCarbonRun`` whose CPU model is ``model``."""

    result = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_a_diverging_calibration_is_one_error_line(tmp_path):
    plan = _plan(tmp_path)
    meter = _simulated(plan)
    plan.ctx.task.loss = lambda model, batch: (torch.tensor(float("nan")), {})
    with meter, pytest.raises(UserError, match="phase calibration: loss became nan"):
        measure_blocks(plan, meter, (0, 0))


def _calibrated_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> ProfileConfig:
    """A tiny one-epoch sweep with the phase calibration on, CodeCarbon's CPU model faked,
    blocks of one update period and two repeats."""
    monkeypatch.setattr(phases, "MIN_PERIODS", 1)
    monkeypatch.setattr(phases, "REPEATS", 2)
    carbon = _FakeRun(FakeCpuModel(40.0))
    monkeypatch.setattr("ssprop_energy.profilers.meter.CodeCarbonRun", lambda *_: carbon)
    energy = {"codecarbon": True, "cpu": "codecarbon", "phase_calibration": True}
    return parse_config(
        tiny_config(
            tmp_path, energy=energy, train={"epochs": 1}, inference={"enabled": False}, **overrides
        )
    )


def test_profile_calibrates_once_before_training_and_the_report_shows_both(tmp_path, monkeypatch):
    """CPU path, CodeCarbon's model faked: phase_calibration.csv, each run's meta.json
    entry, and phases.csv's calibrated columns with the note on which figure to cite."""
    cfg = _calibrated_config(tmp_path, monkeypatch)
    messages: list[str] = []
    reporter = _Messages(messages)
    result = profile(cfg, reporter=reporter)
    assert result.exit_code == 0
    assert messages[0] == "phase calibration: 2 runs to train"
    assert re.fullmatch(
        r"phase calibration: 1 unit in [\d.]+ s, [\d.]+ J \(estimated\); .*phase_calibration.csv",
        messages[1],
    )
    table = pd.read_csv(result.sweep_dir / "phase_calibration.csv")
    assert list(table["phase"]) == list(CALIBRATED)
    assert set(table["provenance"]) == {"estimated"}
    phases_csv = result.report.phases
    calibrated = phases_csv[phases_csv["phase"].isin(CALIBRATED)]
    assert set(calibrated["provenance_calibrated"]) <= {"estimated", "unavailable"}
    for _, row in calibrated.iterrows():
        within_noise = row["note_calibrated"].startswith("keep 1.0: within its own noise")
        assert within_noise == math.isnan(row["energy_j_calibrated"])
    other = phases_csv[~phases_csv["phase"].isin(CALIBRATED)]
    assert set(other["provenance_calibrated"]) == {"unavailable"}
    assert any(n.startswith("phases.csv: cite energy_j_calibrated") for n in result.report.notes)
    off = cfg.model_copy(
        update={"energy": cfg.energy.model_copy(update={"phase_calibration": False})}
    )
    assert [s.run_id for s in plan_runs(cfg)] == [s.run_id for s in plan_runs(off)]
    # a second call finds every run finished: nothing to calibrate
    messages.clear()
    profile(cfg, reporter=reporter)
    assert not any(m.startswith("phase calibration") for m in messages)


@dataclass
class _Messages:
    lines: list[str]

    def message(self, text: str) -> None:
        self.lines.append(text)

    def __getattr__(self, name: str):  # the other reporter hooks do nothing
        return lambda *_, **__: None


def test_estimate_calibrates_the_phases_and_profile_reuses_them(tmp_path, monkeypatch):
    cfg = _calibrated_config(tmp_path, monkeypatch, methods=[{"name": "dense"}])
    predicted = estimate_sweep(cfg, steps=2)
    stored = predicted.sweep_dir
    table = pd.read_csv(stored / "phase_calibration.csv")
    assert len(table) == 3 and table["unit"].nunique() == 1
    row = predicted.runs.iloc[0]
    for phase in CALIBRATED:
        price = table.loc[table["phase"] == phase, "energy_j_per_step"].iloc[0]
        assert row[f"energy_j_{phase}_calibrated"] == pytest.approx(
            price * row["steps"], nan_ok=True
        )
    messages: list[str] = []
    run_sweep(cfg, reporter=_Messages(messages))
    assert (
        messages[1]
        == f"phase calibration: every unit reused from {stored / 'phase_calibration.csv'}"
    )
    assert pd.read_csv(stored / "phase_calibration.csv").equals(table)
    (stored / "phase_calibration.csv").write_text("unit,keep\nabc,oops\n")
    with pytest.raises(UserError, match=re.escape("phase_calibration.csv: no column 'phase'")):
        run_sweep(cfg, only=[row["run_id"]], reporter=_Messages([]))


def _record(tmp_path, entry, steps=(4, 4)):
    epochs = pd.DataFrame({"epoch": range(len(steps)), "steps": list(steps)})
    meta = RunMeta("r", "s", "dense", "dense", {}, "classification", "accuracy", True, 0, {}, {},
                   len(steps), 1.0, {}, "")  # fmt: skip
    (tmp_path / "meta.json").write_text(json.dumps({**meta.to_json(), "phase_calibration": entry}))
    return RunRecord(tmp_path, read_meta(tmp_path), epochs)


def _price(keep, phase, joules, note=""):
    return {"keep": keep, "phase": phase, "unit": "u", "energy_j_per_step": joules,
            "provenance": "measured", "note": note}  # fmt: skip


def test_the_report_multiplies_each_keep_by_the_steps_of_the_stored_epochs(tmp_path):
    steps = [[0, 1.0, 2], [0, 0.2, 2], [1, 1.0, 2], [1, 0.2, 2], [2, 1.0, 4]]  # 3 planned
    prices = [_price(1.0, "backward", 3.0), _price(0.2, "backward", 1.0)]
    prices += [_price(1.0, "forward", 2.0), _price(0.2, "forward", None, "within its own noise")]
    figures = calibrated_phases(_record(tmp_path, {"prices": prices, "steps": steps}))
    assert figures["backward"] == (4 * 3.0 + 4 * 1.0, "measured", "")
    joules, label, note = figures["forward"]
    assert math.isnan(joules) and label == "unavailable"
    assert note == "keep 0.2: within its own noise"
    moved = calibrated_phases(_record(tmp_path, {"prices": prices, "steps": steps}, (4, 5)))
    assert moved["backward"][2] == "the stored steps differ from the plan"
    with pytest.raises(UserError, match=r"meta.json: phase_calibration.prices.0.phase: field requ"):
        calibrated_phases(_record(tmp_path, {"prices": [{"keep": 1.0}], "steps": steps}))
