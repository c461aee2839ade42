"""Every doctor check against the fakes at the hardware boundary: pass, fail, not applicable."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ssprop_energy.profilers import doctor
from ssprop_energy.profilers.carbon import CpuTdp
from ssprop_energy.profilers.doctor import (
    CheckResult,
    DoctorSettings,
    check_codecarbon_cpu,
    check_counter_period,
    check_counter_vs_samples,
    check_idle_power,
    check_nvml,
    check_rapl,
    check_sampler_overhead,
    guarded,
    run_doctor,
)
from ssprop_energy.profilers.nvml import NvmlGpu, NvmlSession
from ssprop_energy.profilers.sources import EnergySource, PowerReading, SourceInfo
from tests.support.profiler_fakes import FakeCarbon, FakeCpuModel, FakeGpu, FakeNvml, set_energy

QUICK = DoctorSettings(
    burn_s=0.4, settle_s=0.2, period_s=0.6, idle_readings=10, interval_s=0.01, ticks=20
)
TABLE_TDP = CpuTdp("AMD EPYC 7B13", 240.0, "CodeCarbon's CPU table")


def nvml_gpu(gpu: FakeGpu) -> NvmlGpu:
    source = NvmlSession(FakeNvml([gpu])).sources()[0]  # type: ignore[arg-type]
    assert isinstance(source, NvmlGpu)
    return source


def loading(gpu: FakeGpu, load_w: float, calls: list[tuple[int, float]]) -> doctor.Burn:
    """A burner that makes ``gpu`` draw ``load_w`` for the burn, then its old power again."""

    def burn(cuda_index: int, seconds: float) -> None:
        calls.append((cuda_index, seconds))
        idle = gpu.power_w
        gpu.set_power(load_w)
        time.sleep(seconds)
        gpu.set_power(idle)

    return burn


def test_nvml_lists_the_gpus_and_the_driver() -> None:
    session = NvmlSession(FakeNvml([FakeGpu("GPU-a", name="NVIDIA H100"), FakeGpu("GPU-b")]))  # type: ignore[arg-type]
    result = check_nvml(session.sources(), session.driver_version(), cuda_gpus=2)
    assert result.status == "pass"
    assert result.figures["gpus"] == 2 and result.figures["driver"] == "550.54.15"
    assert result.figures["gpu0"] == "NVIDIA H100 (NVML index 0)"


def test_nvml_missing_is_not_applicable_without_cuda_and_a_fail_with_it() -> None:
    session = NvmlSession(FakeNvml([], init_error="Driver Not Loaded"))  # type: ignore[arg-type]
    sources = session.sources()
    absent = check_nvml(sources, None, cuda_gpus=0)
    assert absent.status == "not applicable"
    assert "Driver Not Loaded" in absent.reason
    broken = check_nvml(sources, None, cuda_gpus=1)
    assert broken.status == "fail"
    assert "CUDA sees 1 GPU(s)" in broken.reason and "Driver Not Loaded" in broken.reason


def test_counter_period_is_measured() -> None:
    result = check_counter_period(nvml_gpu(FakeGpu("GPU-a", update_s=0.1)), poll_s=0.6)
    assert result.status == "pass", result
    assert result.figures["period_s"] == pytest.approx(0.1, abs=0.02)


def test_counter_slower_than_assumed_fails() -> None:
    result = check_counter_period(nvml_gpu(FakeGpu("GPU-a", update_s=0.25)), poll_s=1.2)
    assert result.status == "fail", result
    assert result.figures["period_s"] == pytest.approx(0.25, abs=0.03)
    assert "slower than the 100 ms" in result.reason


def test_counter_that_never_moves_fails_and_no_counter_is_not_applicable() -> None:
    stuck = check_counter_period(nvml_gpu(FakeGpu("GPU-a", power_w=0.0)), poll_s=0.3)
    assert stuck.status == "fail" and "changed 0 time(s)" in stuck.reason
    none = check_counter_period(nvml_gpu(FakeGpu("GPU-a", counter=False)), poll_s=0.3)
    assert none.status == "not applicable" and "no total-energy counter" in none.reason


def test_idle_power_stable_passes_and_noisy_fails() -> None:
    stable = check_idle_power(nvml_gpu(FakeGpu("GPU-a", power_w=60.0)), 10, 0.005)
    assert stable.status == "pass"
    assert stable.figures["mean_w"] == 60.0 and stable.figures["cv"] == 0.0
    noisy = check_idle_power(
        nvml_gpu(FakeGpu("GPU-a", power_w=60.0, reported_noise_w=9.0)), 10, 0.005
    )
    assert noisy.status == "fail"
    assert noisy.figures["cv"] == pytest.approx(0.15, abs=1e-3)
    assert noisy.figures["min_w"] == 51.0 and noisy.figures["max_w"] == 69.0


def test_counter_agrees_with_samples_under_load() -> None:
    gpu = FakeGpu("GPU-a", power_w=100.0, update_s=0.002)
    calls: list[tuple[int, float]] = []
    result = check_counter_vs_samples(nvml_gpu(gpu), 0, loading(gpu, 150.0, calls), QUICK)
    assert calls == [(0, 0.4)]
    assert result.status == "pass", result
    window = result.figures["window_s"]
    assert isinstance(window, float) and window >= 0.8
    expected = 100.0 * window + 50.0 * 0.4  # idle all along, +50 W during the burn
    assert result.figures["counter_j"] == pytest.approx(expected, rel=0.03)
    assert abs(float(result.figures["relative_difference"])) <= 0.05


def test_power_readings_off_from_the_counter_fail() -> None:
    gpu = FakeGpu("GPU-a", power_w=100.0, update_s=0.002, reported_power_w=150.0)
    result = check_counter_vs_samples(nvml_gpu(gpu), 0, lambda i, s: time.sleep(s), QUICK)
    assert result.status == "fail"
    assert result.figures["relative_difference"] == pytest.approx(0.5, abs=0.05)
    assert "+5" in result.reason and "limit 5%" in result.reason


def test_counter_vs_samples_without_a_counter_and_with_a_lost_gpu() -> None:
    none = check_counter_vs_samples(
        nvml_gpu(FakeGpu("GPU-a", counter=False)), 0, lambda i, s: None, QUICK
    )
    assert none.status == "not applicable"
    lost = nvml_gpu(FakeGpu("GPU-a", update_s=0.002, fail_after=4))
    result = guarded(
        "gpu0 counter vs samples",
        lambda: check_counter_vs_samples(lost, 0, lambda i, s: time.sleep(s), QUICK),
    )
    assert result.status == "fail"
    assert result.reason == "FakeNVMLError: GPU is lost"


def test_rapl_readable_and_moving_passes(powercap: Path) -> None:
    zone = powercap / "intel-rapl:0"
    timer = threading.Timer(0.05, set_energy, (zone, 21_000_000))  # +20 J in 0.2 s
    timer.start()
    result = check_rapl(powercap)
    timer.join()
    assert result.status == "pass", result
    assert 60 < float(result.figures["power_w"]) < 110


def test_rapl_counter_that_does_not_move_fails(powercap: Path) -> None:
    result = check_rapl(powercap)
    assert result.status == "fail" and "did not move" in result.reason


def test_rapl_permission_denied_fails_with_the_fix(
    powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_text = Path.read_text

    def deny(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", deny)
    result = check_rapl(powercap)
    assert result.status == "fail"
    assert "sudo chmod a+r" in result.reason
    assert f"z {powercap}/*-rapl:*/energy_uj 0444" in result.reason


def test_rapl_without_powercap_is_not_applicable(tmp_path: Path) -> None:
    result = check_rapl(tmp_path / "none")
    assert result.status == "not applicable" and "no powercap driver" in result.reason


class SlowSource(EnergySource):
    """A power source whose reading takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.info = SourceInfo("cpu", "estimated", None, "slow")
        self.seconds = seconds

    def sample(self) -> PowerReading:
        time.sleep(self.seconds)
        return PowerReading(10.0)


def test_sampler_overhead_cheap_passes_slow_fails_none_is_not_applicable() -> None:
    settings = DoctorSettings(interval_s=0.1, ticks=5)
    cheap = check_sampler_overhead([FakeCpuModel()], settings)
    assert cheap.status == "pass" and cheap.figures["sources"] == "cpu"
    slow = check_sampler_overhead([SlowSource(0.005)], settings)
    assert slow.status == "fail"
    assert float(slow.figures["share"]) >= 0.05
    assert check_sampler_overhead([], settings).status == "not applicable"


def test_codecarbon_cpu_reports_the_table_or_the_guess_and_fails_without_a_table() -> None:
    table = check_codecarbon_cpu(lambda: TABLE_TDP)
    assert table.status == "pass" and table.figures["tdp_w"] == 240.0
    assert "guess" not in table.reason
    guess = CpuTdp("AMD EPYC", 8.0, "4 W x 2 logical CPUs: not in CodeCarbon's CPU table")
    fallback = check_codecarbon_cpu(lambda: guess)
    assert fallback.status == "pass" and fallback.figures["model"] == "AMD EPYC"
    assert "rest on this guess" in fallback.reason

    def broken() -> CpuTdp:
        raise RuntimeError("no TDP._get_cpu_power_from_registry")

    failed = check_codecarbon_cpu(broken)
    assert failed.status == "fail" and "no TDP._get_cpu_power_from_registry" in failed.reason


def statuses(results: list[CheckResult]) -> dict[str, str]:
    return {r.name: r.status for r in results}


def test_run_doctor_on_two_fake_gpus_checks_each(powercap: Path) -> None:
    gpus = [FakeGpu(f"GPU-{i}", power_w=80.0, update_s=0.002) for i in range(2)]
    calls: list[tuple[int, float]] = []

    def burn(index: int, seconds: float) -> None:
        loading(gpus[index], 120.0, calls)(index, seconds)

    fake = FakeNvml(gpus)
    results = run_doctor(
        QUICK,
        pynvml=fake,  # type: ignore[arg-type]
        powercap_root=powercap,
        burn=burn,
        cuda_gpus=lambda: 2,
        carbon=FakeCarbon(FakeCpuModel()),  # type: ignore[arg-type]
        tdp=lambda: TABLE_TDP,
    )
    assert [c[0] for c in calls] == [0, 1]
    got = statuses(results)
    for gpu in ("gpu0", "gpu1"):
        for what in ("counter period", "idle power", "counter vs samples"):
            assert got[f"{gpu} {what}"] == "pass", results
    assert got["nvml"] == "pass"
    assert "sampler overhead" in got  # its pass or fail is a timing: tested on its own
    assert got["rapl"] == "fail"  # the fixture's counters stand still
    assert fake.shutdowns == 1


def test_run_doctor_without_nvml_says_why_for_every_gpu_check(tmp_path: Path) -> None:
    results = run_doctor(
        QUICK,
        pynvml=FakeNvml([], init_error="NVML Shared Library Not Found"),  # type: ignore[arg-type]
        powercap_root=tmp_path,
        cuda_gpus=lambda: 0,
        carbon=FakeCarbon(FakeCpuModel()),  # type: ignore[arg-type]
        tdp=lambda: TABLE_TDP,
    )
    gpu_checks = [r for r in results if r.name == "nvml" or r.name.startswith("gpu ")]
    assert len(gpu_checks) == 4
    for result in gpu_checks:
        assert result.status == "not applicable"
        assert "NVML Shared Library Not Found" in result.reason
    assert statuses(results)["sampler overhead"] == "pass"
    assert statuses(results)["rapl"] == "not applicable"
