"""A GPU lost mid-run (the fake NVML raising from the sampler on) is, under ``profile``, under
``RunRecorder`` and on a rank of a distributed run alike: a note in meta.json, a ``flag:``
line of the report, and no figure (``unavailable``) from that GPU for the epochs after it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from ssprop_energy import RunRecorder
from ssprop_energy.cli import app
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.run import trainer
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.reports import sweep_report
from ssprop_energy.store import load_run, load_sweep
from tests.support.harness_configs import tiny_config, write_config
from tests.support.profiler_fakes import FakeGpu, FakeNvml

HERE = Path(__file__).parent
LOST = "FakeNVMLError: GPU is lost"


def fake_meter(gpu: FakeGpu) -> EnergyMeter:
    nvml = FakeNvml([gpu])
    return EnergyMeter(gpus="auto", cpu=None, codecarbon=False, interval_s=0.01, pynvml=nvml)  # type: ignore[arg-type]


def lose(gpu: FakeGpu) -> None:
    gpu.fail_after = gpu.calls  # every NVML call raises from now on


def assert_lost_after_first_epoch(sweep: Path, source: str) -> None:
    (run,) = load_sweep(sweep)
    assert run.status == "finished" and len(run.epochs) == 2
    assert any(note.startswith(f"{source}: {LOST}") for note in run.meta.notes)
    provenance = run.epochs[f"provenance_{source}"].tolist()
    assert provenance[0] != "unavailable" and provenance[1] == "unavailable"
    assert run.epochs[f"energy_j_{source}"].isna().tolist() == [False, True]
    report = sweep_report(sweep)
    assert report is not None
    flags = [f for f in report.flags if f.startswith("faults while measuring: ")]
    assert len(flags) == 1 and LOST in flags[0]


def test_under_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu("GPU-a", power_w=120.0)
    monkeypatch.setattr(trainer, "build_meter", lambda energy, device: fake_meter(gpu))
    config = write_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": 2},
                          inference={"enabled": False})  # fmt: skip
    (spec,) = plan_runs(load_config(config))
    sweep = tmp_path / "runs" / "tiny"
    with pytest.warns(RuntimeWarning, match="GPU is lost"):
        outcome = trainer.run_training(spec, sweep / spec.run_id, on_epoch=lambda _: lose(gpu))
    assert outcome.status == "finished"
    assert_lost_after_first_epoch(sweep, "gpu0")


def test_under_run_recorder(tmp_path: Path) -> None:
    gpu = FakeGpu("GPU-a", power_w=120.0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with (
        pytest.warns(RuntimeWarning, match="GPU is lost"),
        RunRecorder(
            tmp_path,
            "loop",
            "own",
            0,
            model=model,
            example_input=torch.randn(8, 4),
            energy={"idle_s": 0},
            meter=fake_meter(gpu),
        ) as rec,  # fmt: skip
    ):
        for epoch in range(2):
            for _ in range(3):
                with rec.phase("forward"):
                    loss = model(torch.randn(8, 4)).square().mean()
                with rec.phase("backward"):
                    loss.backward()
                with rec.phase("optimizer"):
                    opt.step()
                    opt.zero_grad()
                rec.end_step(loss)
            rec.end_epoch({"accuracy": 0.5})
            if epoch == 0:
                lose(gpu)
    assert_lost_after_first_epoch(tmp_path / "loop", "gpu0")


def test_on_a_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setenv("SSPROP_TEST_LOSE_GPU_RANK", "1")
    energy = {"codecarbon": False, "idle_s": 0}
    raw = tiny_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": 2},
                      energy=energy, inference={"enabled": False})  # fmt: skip
    raw["model"] = {"factory": "tests.support.dist_models:gpu_losing_cnn"}
    config = tmp_path / "model.yaml"
    config.write_text(yaml.safe_dump(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        args = ["profile", str(config), "--nproc-per-node", "2", "-q"]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    sweep = tmp_path / "runs" / "tiny"
    assert_lost_after_first_epoch(sweep, "gpu1")
    (run,) = load_sweep(sweep)
    assert set(run.epochs["provenance_gpu0"]) != {"unavailable"}  # rank 0 kept its GPU
    assert load_run(run.path).meta.notes == [n for n in run.meta.notes if "gpu1" in n]
