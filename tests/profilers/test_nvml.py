from __future__ import annotations

import pytest

from ssprop_energy.profilers.nvml import NvmlGpu, NvmlSession
from tests.support.profiler_fakes import FakeGpu, FakeNvml


def gpus(n: int, **kwargs: object) -> list[FakeGpu]:
    return [FakeGpu(uuid=f"GPU-{i}aaa-{i}", name=f"Fake {i}", **kwargs) for i in range(n)]  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def all_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def names(session: NvmlSession, gpus: str | list[int] | None = "auto") -> list[str]:
    return [f"{s.name}:{s.info.device}" for s in session.sources(gpus)]


def test_one_source_per_gpu_with_counter_or_samples() -> None:
    fake = FakeNvml([FakeGpu("GPU-a", counter=True), FakeGpu("GPU-b", counter=False)])
    sources = NvmlSession(fake).sources()  # type: ignore[arg-type]
    assert [s.name for s in sources] == ["gpu0", "gpu1"]
    assert [s.info.provenance for s in sources] == ["measured", "sampled"]
    assert sources[0].info.device == "Fake A100 (NVML index 0)"


def test_counter_is_read_in_joules_and_power_in_watts() -> None:
    gpu = FakeGpu("GPU-a", power_w=250.0, update_s=0.001)
    source = NvmlSession(FakeNvml([gpu])).sources()[0]  # type: ignore[arg-type]
    assert isinstance(source, NvmlGpu)
    reading = source.sample()
    assert reading.power_w == pytest.approx(250.0)
    assert reading.utilization_pct == 87.0
    assert reading.memory_used_mb == pytest.approx(3 * 1024)
    assert reading.sm_clock_mhz == 1410.0
    assert reading.temperature_c == 61.0
    assert source.energy_j() == pytest.approx(gpu.energy_mj() / 1000, abs=0.5)


def test_missing_extras_fall_back_to_power_only() -> None:
    source = NvmlSession(FakeNvml([FakeGpu("GPU-a", extras=False)])).sources()[0]  # type: ignore[arg-type]
    reading = source.sample()
    assert reading is not None and reading.power_w == 100.0
    assert reading.utilization_pct is None


def test_no_driver_is_unavailable_with_reason() -> None:
    session = NvmlSession(FakeNvml([], init_error="Driver Not Loaded"))  # type: ignore[arg-type]
    (source,) = session.sources()
    assert source.name == "gpu" and source.info.provenance == "unavailable"
    assert "Driver Not Loaded" in (source.info.reason or "")
    assert session.driver_version() is None
    session.close()


def test_no_gpu_and_no_request() -> None:
    session = NvmlSession(FakeNvml([]))  # type: ignore[arg-type]
    assert session.sources(None) == []
    (source,) = session.sources()
    assert source.info.reason == "no visible NVIDIA GPU"


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("2,0", ["gpu0:Fake 2 (NVML index 2)", "gpu1:Fake 0 (NVML index 0)"]),
        ("GPU-1aaa", ["gpu0:Fake 1 (NVML index 1)"]),
        ("1,banana,0", ["gpu0:Fake 1 (NVML index 1)"]),  # CUDA stops at the first bad entry
        ("0,7,1", ["gpu0:Fake 0 (NVML index 0)"]),
        ("GPU-", []),  # ambiguous UUID prefix
    ],
)
def test_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    session = NvmlSession(FakeNvml(gpus(3)))  # type: ignore[arg-type]
    found = [n for n in names(session) if "unavailable" not in n and "no visible" not in n]
    if expected:
        assert found == expected
    else:
        assert [s.info.reason for s in session.sources()] == ["no visible NVIDIA GPU"]


def test_explicit_indices_and_out_of_range() -> None:
    session = NvmlSession(FakeNvml(gpus(2)))  # type: ignore[arg-type]
    sources = session.sources([1, 5])
    assert sources[0].name == "gpu1" and sources[0].info.provenance == "measured"
    assert sources[1].name == "gpu5" and sources[1].info.provenance == "unavailable"


def test_shutdown_once_and_driver_version() -> None:
    fake = FakeNvml(gpus(1))
    session = NvmlSession(fake)  # type: ignore[arg-type]
    assert session.driver_version() == "550.54.15"
    session.close()
    session.close()
    assert fake.shutdowns == 1
