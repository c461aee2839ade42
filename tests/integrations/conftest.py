"""Fixtures of the integration tests: a profile sweep of a tiny CNN (dense and ssProp at
keep 0.5) that the recorded runs are compared with, and no network for Hugging Face."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.sweep.runner import run_sweep
from tests.support.harness_configs import write_config
from tests.support.integration_loops import PROFILE_OVERRIDES


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The profile sweep folder: a dense and an ssProp (keep 0.5) run of the tiny CNN."""
    root = tmp_path_factory.mktemp("profiled")
    config = load_config(write_config(root, **PROFILE_OVERRIDES))
    result = run_sweep(config, out=root / "runs")
    assert result.exit_code == 0
    return result.sweep_dir
