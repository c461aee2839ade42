from __future__ import annotations

import os
import socket
import time
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssprop_energy.profilers import EnergyMeter, carbon
from ssprop_energy.profilers.carbon import (
    CpuTdp,
    SystemLoad,
    carbon_intensity_g_per_kwh,
    codecarbon_tdp,
    cpu_estimate,
    cpu_load_power_w,
    emissions_kg,
)
from tests.support.profiler_fakes import FakeNvml


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
    printed = capfd.readouterr()
    assert printed.out == "" and "codecarbon" not in printed.err.lower()
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


def test_cpu_load_model_by_hand() -> None:
    assert cpu_load_power_w(100.0, 0.0) == pytest.approx(10.0)
    assert cpu_load_power_w(100.0, 0.5) == pytest.approx(100 * (0.1 + 0.9 * 0.125))
    assert cpu_load_power_w(100.0, 1.0) == pytest.approx(100.0)


class FakeTdp:
    """Stands in for CodeCarbon's ``TDP``: a detected ``model`` and its table entry."""

    model = "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"
    tdp = 999  # CodeCarbon's own fall-back differs by version: never used

    def _get_cpu_power_from_registry(self, model: str) -> int | None:
        return 150 if model == "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz" else None


@pytest.fixture
def fake_tdp(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeTdp]]:
    import codecarbon.core.cpu

    fake = type("Tdp", (FakeTdp,), {})
    monkeypatch.setattr(codecarbon.core.cpu, "TDP", fake)
    monkeypatch.setattr(carbon.os, "cpu_count", lambda: 6)
    codecarbon_tdp.cache_clear()
    yield fake
    codecarbon_tdp.cache_clear()


def test_tdp_from_codecarbons_table(fake_tdp: type[FakeTdp]) -> None:
    assert codecarbon_tdp() == CpuTdp(FakeTdp.model, 150.0, "CodeCarbon's CPU table")
    source = cpu_estimate()
    assert source.info.provenance == "estimated"
    assert source.info.device == (
        f"{FakeTdp.model}, TDP x (0.1 + 0.9 x load^3), TDP 150 W (CodeCarbon's CPU table)"
    )


@pytest.mark.parametrize(
    ("model", "basis"),
    [
        ("AMD EPYC", "4 W x 6 logical CPUs: not in CodeCarbon's CPU table"),
        ("Unknown", "4 W x 6 logical CPUs: CPU model not detected"),
    ],
)
def test_tdp_of_a_cpu_missing_from_the_table_is_per_thread(
    fake_tdp: type[FakeTdp], model: str, basis: str
) -> None:
    fake_tdp.model = model
    assert codecarbon_tdp() == CpuTdp(model if model != "Unknown" else "unknown CPU", 24.0, basis)


def test_a_codecarbon_without_the_table_lookup_leaves_the_cpu_unavailable(
    fake_tdp: type[FakeTdp], monkeypatch: pytest.MonkeyPatch
) -> None:
    import codecarbon.core.cpu

    monkeypatch.setattr(codecarbon.core.cpu, "TDP", type("Tdp", (), {"model": "X", "tdp": 9}))
    source = cpu_estimate()
    assert source.info.provenance == "unavailable"
    assert "TDP._get_cpu_power_from_registry" in (source.info.reason or "")


def test_system_load_is_the_busy_share_of_cpu_time(monkeypatch: pytest.MonkeyPatch) -> None:
    Times = namedtuple("Times", "user system idle iowait guest")
    readings = iter(
        [
            Times(10.0, 0.0, 90.0, 0.0, 5.0),  # baseline
            Times(13.0, 1.0, 95.0, 1.0, 5.0),  # +4 busy of +10: 0.4
            Times(13.0, 1.0, 95.0, 1.0, 5.0),  # no time passed: the last load again
            Times(13.0, 1.0, 105.0, 1.0, 5.0),  # idle only: 0
        ]
    )
    monkeypatch.setattr(carbon.psutil, "cpu_times", lambda: next(readings))
    load = SystemLoad()
    assert [load(), load(), load()] == pytest.approx([0.4, 0.4, 0.0])
