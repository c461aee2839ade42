from __future__ import annotations

from importlib import metadata

import pytest
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.profilers import versions
from ssprop_energy.profilers.discovery import Hardware, find_gpus
from ssprop_energy.profilers.versions import PackageVersion, driver_version, release
from tests.support.profiler_fakes import FakeNvml

runner = CliRunner()


def fake_versions(monkeypatch: pytest.MonkeyPatch, found: dict[str, str]) -> None:
    def version(name: str) -> str:
        if name not in found:
            raise metadata.PackageNotFoundError(name)
        return found[name]

    monkeypatch.setattr(versions.metadata, "version", version)


def test_release_ignores_local_labels_and_trailing_zeros() -> None:
    assert release("2.13.0+cpu") == release("2.13") == (2, 13)
    assert release("12.535.77") > release("12.6")
    with pytest.raises(ValueError, match="not a version"):
        release("dev")


@pytest.mark.parametrize(
    ("version", "warning"),
    [
        ("2.7.1", None),
        ("3.3.2", None),
        ("3.0", None),
        ("2.7.0", "codecarbon 2.7.0 is outside the tested range 2.7.1 to 3.3.2"),
        ("3.4.0", "codecarbon 3.4.0 is outside the tested range 2.7.1 to 3.3.2"),
        (None, "codecarbon is not installed"),
    ],
)
def test_a_version_outside_its_tested_range_warns(version: str | None, warning: str) -> None:
    assert PackageVersion("codecarbon", version, ("2.7.1", "3.3.2")).warning == warning


def test_env_prints_versions_and_warns_outside_the_tested_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oldest_torch = versions.TESTED["torch"][0]
    newest_nvml = versions.TESTED["nvidia-ml-py"][1]
    fake_versions(
        monkeypatch,
        {"torch": f"{oldest_torch}+cpu", "codecarbon": "1.2.0", "nvidia-ml-py": newest_nvml},
    )
    result = runner.invoke(app, ["env", "--no-codecarbon"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert f"torch {oldest_torch}+cpu" in output and "codecarbon 1.2.0" in output
    assert f"nvidia-ml-py {newest_nvml}" in output and "NVIDIA driver" in output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "codecarbon 1.2.0 is outside the tested range" in warnings[0]


def test_driver_version_or_why_not() -> None:
    assert driver_version(Hardware([], driver="550.54.15")) == "550.54.15"
    assert driver_version(Hardware([])) == "unavailable: no GPU source was asked for"
    for nvml, expected in [
        (FakeNvml([]), "550.54.15"),
        (FakeNvml([], init_error="Driver Not Loaded"), "unavailable: Driver Not Loaded"),
    ]:
        hardware = find_gpus("auto", nvml)  # type: ignore[arg-type]
        try:
            assert driver_version(hardware) == expected
        finally:
            hardware.close()
