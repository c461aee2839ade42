from __future__ import annotations

from pathlib import Path

import pytest

from ssprop_energy.profilers.discovery import discover, find_cpu, find_gpus
from tests.support.profiler_fakes import FakeCarbon, FakeCpuModel, FakeGpu, FakeNvml


@pytest.fixture(autouse=True)
def all_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def labels(sources: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(s.name, s.info.provenance) for s in sources]


def test_gpus_with_models_and_driver() -> None:
    fake = FakeNvml([FakeGpu("GPU-a", name="NVIDIA T4"), FakeGpu("GPU-b", counter=False)])
    found = find_gpus("auto", fake)  # type: ignore[arg-type]
    assert labels(found.sources) == [("gpu0", "measured"), ("gpu1", "sampled")]
    assert found.gpu_models == ["NVIDIA T4", "Fake A100"]
    assert found.driver == "550.54.15"
    found.close()
    found.close()
    assert fake.shutdowns == 1 and not fake.initialised


def test_no_gpu_is_an_ordinary_result() -> None:
    assert find_gpus(None).sources == []
    found = find_gpus("auto", FakeNvml([], init_error="Driver Not Loaded"))  # type: ignore[arg-type]
    assert labels(found.sources) == [("gpu", "unavailable")]
    assert found.sources[0].info.reason == "NVML unavailable: Driver Not Loaded"
    assert found.driver is None and found.gpu_models == []
    missing = find_gpus([0, 3], FakeNvml([FakeGpu("GPU-a")]))  # type: ignore[arg-type]
    assert labels(missing.sources) == [("gpu0", "measured"), ("gpu3", "unavailable")]


def test_cpu_is_rapl_first(powercap: Path) -> None:
    carbon = FakeCarbon(FakeCpuModel())
    found = find_cpu("auto", carbon, powercap)  # type: ignore[arg-type]
    assert labels(found) == [("cpu", "measured"), ("dram", "measured")]
    assert find_cpu(None, carbon, powercap) == []  # type: ignore[arg-type]


NO_RAPL = "no {root} (not Linux, or no powercap driver)"


@pytest.mark.parametrize(
    ("mode", "carbon", "expected", "reason"),
    [
        ("auto", FakeCarbon(FakeCpuModel()), "estimated", None),
        ("auto", None, "unavailable", f"{NO_RAPL}; CodeCarbon disabled"),
        ("auto", FakeCarbon(reason="no model"), "unavailable", f"{NO_RAPL}; no model"),
        ("rapl", FakeCarbon(FakeCpuModel()), "unavailable", NO_RAPL),
    ],
)
def test_cpu_falls_back_to_codecarbon_else_says_why(
    tmp_path: Path, mode: str, carbon: FakeCarbon | None, expected: str, reason: str | None
) -> None:
    root = tmp_path / "none"
    cpu, dram = find_cpu(mode, carbon, root)  # type: ignore[arg-type]
    assert (cpu.name, cpu.info.provenance) == ("cpu", expected)
    assert cpu.info.reason == (reason and reason.format(root=root))
    assert (dram.name, dram.info.provenance) == ("dram", "unavailable")


def test_codecarbon_only_skips_rapl(powercap: Path) -> None:
    found = find_cpu("codecarbon", FakeCarbon(FakeCpuModel()), powercap)  # type: ignore[arg-type]
    assert labels(found) == [("cpu", "estimated")]  # no dram without RAPL
    (cpu,) = find_cpu("codecarbon", None, powercap)
    assert (cpu.info.provenance, cpu.info.reason) == ("unavailable", "CodeCarbon disabled")


def test_discover_orders_gpus_then_cpu_and_closes_on_failure(powercap: Path) -> None:
    fake = FakeNvml([FakeGpu("GPU-a")])
    found = discover("auto", "auto", None, powercap_root=powercap, pynvml=fake)  # type: ignore[arg-type]
    assert [s.name for s in found.sources] == ["gpu0", "cpu", "dram"]
    found.close()
    failing = FakeNvml([FakeGpu("GPU-a")])
    with pytest.raises(RuntimeError, match="boom"):
        discover(
            "auto",
            "codecarbon",
            FakeCarbon(error=RuntimeError("boom")),  # type: ignore[arg-type]
            powercap_root=powercap,
            pynvml=failing,  # type: ignore[arg-type]
        )
    assert failing.shutdowns == 1
