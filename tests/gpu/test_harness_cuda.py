"""A short harness run on CUDA with mixed precision, metered by NVML; and the doctor's GPU
checks on this GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.profilers.doctor import DoctorSettings, run_doctor
from ssprop_energy.store import load_sweep
from tests.support.harness_configs import write_config

pytestmark = pytest.mark.gpu


def test_two_epochs_on_cuda_with_amp(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        model={"name": "resnet18", "kwargs": {"width": 16}},
        data={"image_size": 16, "channels": 3, "samples": 256, "batch_size": 64},
        train={"device": "cuda", "amp": True},
        energy={"gpus": "auto", "cpu": "auto", "codecarbon": False, "interval_s": 0.05},
    )
    result = CliRunner().invoke(app, ["profile", str(config)])
    assert result.exit_code == 0, result.output
    runs = load_sweep(tmp_path / "runs" / "tiny")
    assert [r.status for r in runs] == ["finished", "finished"]
    for run in runs:
        epochs = run.epochs
        assert len(epochs) == 2
        assert epochs["energy_j_gpu0"].gt(0).all()
        assert set(epochs["provenance_gpu0"]) <= {"measured", "split", "sampled"}
        assert epochs["flops_backward"].gt(0).all()
        assert run.meta.energy.sources["gpu0"].provenance == "measured"
    sparse = next(r for r in runs if r.meta.method == "ssprop")
    assert sparse.epochs["flops_backward"].iloc[1] < sparse.epochs["flops_backward_dense"].iloc[1]


def test_doctor_gpu_checks_pass_on_this_gpu() -> None:
    results = run_doctor(DoctorSettings(burn_s=5.0))
    gpu_checks = {r.name: r for r in results if r.name.startswith(("nvml", "gpu"))}
    assert gpu_checks["nvml"].status == "pass"
    failed = {n: r.reason for n, r in gpu_checks.items() if r.status == "fail"}
    assert not failed, failed
