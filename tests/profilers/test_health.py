"""GPU hygiene through the fake NVML: each GPU's temperature, SM clock, power limit and
throttle reasons as epoch columns; nothing for a meter without a GPU."""

from __future__ import annotations

import math

import pytest

from ssprop_energy.columns import THROTTLE_REASONS, throttle_names
from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.profilers.nvml import NvmlGpu, NvmlSession
from tests.support.profiler_fakes import FakeGpu, FakeNvml


@pytest.fixture(autouse=True)
def all_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_a_gpu_reports_its_state() -> None:
    gpu = FakeGpu("GPU-a", temperature_c=83, sm_clock_mhz=1095, power_limit_mw=250_000,
                  throttle_reasons=0x40 | 0x1)  # fmt: skip
    source = NvmlSession(FakeNvml([gpu])).sources()[0]  # type: ignore[arg-type]
    assert isinstance(source, NvmlGpu)
    health = source.health()
    assert (health.temperature_c, health.sm_clock_mhz) == (83.0, 1095.0)
    assert health.power_limit_w == 250.0 and health.throttle_reasons == 0x41


def test_figures_a_gpu_does_not_report_are_none() -> None:
    source = NvmlSession(FakeNvml([FakeGpu("GPU-a", extras=False)])).sources()[0]  # type: ignore[arg-type]
    health = source.health()
    assert health is not None and set(vars(health).values()) == {None}


def test_the_meter_gives_one_column_per_gpu_and_quantity() -> None:
    gpus = [FakeGpu("GPU-a", throttle_reasons=0x4), FakeGpu("GPU-b", extras=False)]
    meter = EnergyMeter(gpus="auto", cpu=None, codecarbon=False, pynvml=FakeNvml(gpus))  # type: ignore[arg-type]
    with meter:
        row = meter.health()
    assert row["gpu_temp_c_gpu0"] == 61.0 and row["sm_clock_mhz_gpu0"] == 1410.0
    assert row["power_limit_w_gpu0"] == 400.0 and row["throttle_reasons_gpu0"] == 4.0
    assert sorted(k for k in row if k.endswith("_gpu1")) == [
        "gpu_temp_c_gpu1", "power_limit_w_gpu1", "sm_clock_mhz_gpu1", "throttle_reasons_gpu1"
    ]  # fmt: skip
    assert all(math.isnan(v) for k, v in row.items() if k.endswith("_gpu1"))


def test_a_meter_without_gpu_adds_no_column() -> None:
    meter = EnergyMeter(gpus=None, cpu=None, codecarbon=False)
    with meter:
        assert meter.health() == {}


def test_only_power_and_heat_count_as_throttling() -> None:
    assert throttle_names(0x1 | 0x2 | 0x10 | 0x100) == []  # idle, app clocks, sync, display
    assert throttle_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal"]
    assert throttle_names(sum(THROTTLE_REASONS)) == list(THROTTLE_REASONS.values())
