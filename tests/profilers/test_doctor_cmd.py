"""``ssprop-energy doctor``: one line per check, the JSON file, the exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ssprop_energy.cli import app, doctor_cmd
from ssprop_energy.profilers.doctor import CheckResult, DoctorSettings

runner = CliRunner()


@pytest.mark.skipif(torch.cuda.is_available(), reason="here the GPU checks run (tests/gpu)")
def test_on_a_machine_without_gpu_every_gpu_check_says_why(tmp_path: Path) -> None:
    out = tmp_path / "doctor.json"
    result = runner.invoke(app, ["doctor", "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for line in lines[:4]:  # nvml and the three GPU checks
        assert line.startswith("not applicable") and "no NVML GPU" in line
    saved = json.loads(out.read_text())
    assert saved["failed"] == []
    assert [c["name"] for c in saved["checks"]][:4] == [
        "nvml",
        "gpu counter period",
        "gpu idle power",
        "gpu counter vs samples",
    ]
    assert {c["name"] for c in saved["checks"]} >= {"rapl", "sampler overhead", "codecarbon cpu"}


def test_a_failed_check_exits_1_and_is_listed(tmp_path: Path, monkeypatch) -> None:
    seen: list[DoctorSettings] = []

    def fake_doctor(settings: DoctorSettings) -> list[CheckResult]:
        seen.append(settings)
        return [
            CheckResult("nvml", "pass", {"gpus": 1}, "1 GPU(s) through NVML"),
            CheckResult("gpu0 counter vs samples", "fail", {"relative_difference": 0.08}, "+8%"),
        ]

    monkeypatch.setattr(doctor_cmd, "run_doctor", fake_doctor)
    out = tmp_path / "d.json"
    result = runner.invoke(app, ["doctor", "--json", str(out), "--burn", "3"])
    assert result.exit_code == 1
    assert seen[0].burn_s == 3.0
    assert "fail            gpu0 counter vs samples    +8% [relative_difference=0.08]" in (
        result.output
    )
    assert json.loads(out.read_text())["failed"] == ["gpu0 counter vs samples"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--json", "."], "--json: . is a folder"), (["--burn", "0"], "--burn: must be > 0")],
)
def test_bad_options_give_one_error_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["doctor", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}")
