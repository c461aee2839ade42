from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from profiler_fakes import FakeNvml

from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.profilers.carbon import carbon_intensity_g_per_kwh, emissions_kg


def test_emissions_by_hand() -> None:
    assert emissions_kg(3.6e6, 400.0) == pytest.approx(0.4)
    assert emissions_kg(0.0, 400.0) == 0.0


def test_regional_intensity_differs_from_country() -> None:
    usa = carbon_intensity_g_per_kwh("usa")
    assert usa == carbon_intensity_g_per_kwh("USA") > 0
    assert carbon_intensity_g_per_kwh("USA", "california") != usa


def test_offline_codecarbon_without_rapl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """No network, no files, no chatter; the CPU is CodeCarbon's model, labelled estimated,
    and our emissions use CodeCarbon's own intensity."""
    connections: list[object] = []

    def forbid(self: socket.socket, address: object) -> None:
        connections.append(address)
        raise OSError("network is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", forbid)
    monkeypatch.setattr(socket.socket, "connect_ex", forbid)
    monkeypatch.setattr(socket, "create_connection", forbid)
    monkeypatch.setattr(socket, "getaddrinfo", forbid)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    meter = EnergyMeter(
        gpus="auto",
        cpu="auto",
        codecarbon=True,
        country="DEU",
        pynvml=FakeNvml([], init_error="no driver"),  # type: ignore[arg-type]
        powercap_root=tmp_path / "no-powercap",
        interval_s=0.05,
    )
    with meter:
        with meter.window("forward"):
            time.sleep(0.2)
        cpu = next(s for s in meter.sources if s.name == "cpu")
    assert connections == []
    assert os.listdir(tmp_path) == []
    assert "codecarbon" not in capfd.readouterr().err.lower()
    assert cpu.provenance == "estimated" and "CodeCarbon" in cpu.device
    m = meter.totals("forward")
    assert m is not None and m.provenance["cpu"] == "estimated"
    assert m.energy_j["cpu"] is not None and m.energy_j["cpu"] > 0
    result = meter.codecarbon_result
    assert result is not None and result["country_iso_code"] == "DEU"
    assert result["emissions"] / result["energy_consumed"] == pytest.approx(
        meter.carbon_intensity_g_per_kwh / 1000, rel=1e-6
    )
    trace = meter.trace()
    assert set(trace["source"]) == {"cpu"}


def test_codecarbon_disabled_leaves_cpu_unavailable(tmp_path: Path) -> None:
    meter = EnergyMeter(
        gpus=None, cpu="auto", codecarbon=False, powercap_root=tmp_path / "no-powercap"
    )
    with meter:
        (cpu, dram) = meter.sources
    assert cpu.provenance == "unavailable"
    assert "not Linux" in (cpu.reason or "") and "CodeCarbon disabled" in (cpu.reason or "")
    assert dram.name == "dram" and dram.provenance == "unavailable"
