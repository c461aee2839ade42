from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ssprop_energy.profilers import EnergyMeter, Measurement, energy_meta, environment_meta
from ssprop_energy.profilers.carbon import carbon_intensity_g_per_kwh
from ssprop_energy.profilers.rapl import RaplSource
from tests.support.profiler_fakes import FakeClock, FakeGpu, FakeNvml, set_energy


@pytest.fixture(autouse=True)
def all_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def make_meter(gpus: list[FakeGpu], powercap: Path, **kwargs: object) -> EnergyMeter:
    options: dict[str, object] = {"cpu": "rapl", "codecarbon": False, "interval_s": 0.02}
    options.update(kwargs)
    return EnergyMeter(pynvml=FakeNvml(gpus), powercap_root=powercap, **options)  # type: ignore[arg-type]


def sampler_alive() -> bool:
    return any(t.name == "ssprop-energy-sampler" for t in threading.enumerate())


def test_sources_and_rapl_window_by_hand(powercap: Path) -> None:
    with make_meter([FakeGpu("GPU-a"), FakeGpu("GPU-b", counter=False)], powercap) as meter:
        assert [(s.name, s.provenance) for s in meter.sources] == [
            ("gpu0", "measured"),
            ("gpu1", "sampled"),
            ("cpu", "measured"),
            ("dram", "measured"),
        ]
        meter.begin("forward")
        set_energy(powercap / "intel-rapl:0", 1_700_000)  # +0.7 J
        set_energy(powercap / "intel-rapl:1", 3_300_000)  # +0.3 J
        set_energy(powercap / "intel-rapl:1/intel-rapl:1:0", 350_000)  # +0.25 J
        time.sleep(0.01)
        m = meter.end("forward")
    assert isinstance(m, Measurement)
    assert m.energy_j["cpu"] == pytest.approx(1.0)
    assert m.energy_j["dram"] == pytest.approx(0.25)
    assert m.provenance["cpu"] == m.provenance["dram"] == "measured"
    assert not sampler_alive()


def test_gpu_counter_window_is_measured(powercap: Path) -> None:
    clock = FakeClock()
    gpu = FakeGpu("GPU-a", power_w=100.0, update_s=0.01, clock=clock)
    with make_meter([gpu], powercap, clock=clock) as meter, meter.window("backward"):
        clock.advance(0.3, meter)
    m = meter.totals("backward")
    assert m is not None and m.provenance["gpu0"] == "measured"
    assert m.energy_j["gpu0"] == pytest.approx(100.0 * m.time_s, abs=1.5)


def test_gpu_without_counter_integrates_power_samples(powercap: Path) -> None:
    clock = FakeClock()
    gpu = FakeGpu("GPU-a", counter=False, power_w=50.0, clock=clock)
    with make_meter([gpu], powercap, clock=clock) as meter:
        meter.begin("eval")
        clock.advance(0.15, meter)
        m = meter.end("eval")
    assert m.provenance["gpu0"] == "sampled"
    assert m.energy_j["gpu0"] == pytest.approx(50.0 * m.time_s, rel=1e-6)


def test_short_window_is_split_never_zero(powercap: Path) -> None:
    clock = FakeClock()
    gpu = FakeGpu("GPU-a", power_w=100.0, update_s=0.1, clock=clock)
    with make_meter([gpu], powercap, interval_s=0.05, clock=clock) as meter:
        clock.advance(1.05, meter)  # a full second of counter history
        meter.begin("optimizer")
        clock.advance(0.02, meter)
        short = meter.end("optimizer")
        meter.begin("optimizer")
        clock.advance(0.15, meter)
        long = meter.end("optimizer")
    assert short.provenance["gpu0"] == "split"
    assert short.energy_j["gpu0"] == pytest.approx(100.0 * short.time_s, rel=0.15)
    assert long.provenance["gpu0"] == "measured"
    row = meter.summary().set_index("window").loc["optimizer"]
    assert row["count"] == 2
    assert row["provenance_gpu0"] == "split"  # the weakest part labels the sum
    assert row["energy_j_gpu0"] == pytest.approx(
        short.energy_j["gpu0"] + long.energy_j["gpu0"]  # type: ignore[operator]
    )


def test_windows_accumulate_and_nest(powercap: Path) -> None:
    edges: list[float] = []
    clock = FakeClock()
    meter = make_meter(
        [FakeGpu("GPU-a", update_s=0.001, clock=clock)],
        powercap,
        sync=lambda: edges.append(clock()),
        clock=clock,
    )
    with meter:
        for _ in range(2):
            with meter.window("step"):
                for phase in ("forward", "backward"):
                    with meter.window(phase):
                        clock.advance(0.01, meter)
    assert len(edges) == 12  # every begin and end synchronises
    summary = meter.summary()
    assert list(summary.columns) == [
        "window",
        "count",
        "time_s",
        "energy_j",
        "emissions_kg",
        "energy_j_gpu0",
        "energy_j_cpu",
        "energy_j_dram",
        "provenance_gpu0",
        "provenance_cpu",
        "provenance_dram",
    ]
    rows = summary.set_index("window")
    assert list(rows.index) == ["step", "forward", "backward"]
    assert list(rows["count"]) == [2, 2, 2]
    assert (
        rows.loc["step", "time_s"] >= rows.loc["forward", "time_s"] + rows.loc["backward", "time_s"]
    )
    assert rows.loc["step", "energy_j"] == pytest.approx(
        rows.loc["step", ["energy_j_gpu0", "energy_j_cpu", "energy_j_dram"]].sum()
    )
    intensity = carbon_intensity_g_per_kwh("USA")
    assert rows.loc["step", "emissions_kg"] == pytest.approx(
        rows.loc["step", "energy_j"] / 3.6e6 * intensity / 1000
    )


def test_window_misuse_is_a_clear_error(powercap: Path) -> None:
    meter = make_meter([], powercap)
    with pytest.raises(RuntimeError, match="start the EnergyMeter"):
        meter.begin("forward")
    with meter:
        meter.begin("forward")
        with pytest.raises(ValueError, match="already open"):
            meter.begin("forward")
        with pytest.raises(ValueError, match="not open"):
            meter.end("backward")
    with pytest.raises(RuntimeError):
        meter.begin("forward")


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_exit_on_exception_stops_everything(powercap: Path, error: type[BaseException]) -> None:
    fake = FakeNvml([FakeGpu("GPU-a")])
    meter = EnergyMeter(
        cpu="rapl",
        codecarbon=False,
        pynvml=fake,  # type: ignore[arg-type]
        powercap_root=powercap,
        interval_s=0.02,
    )
    with pytest.raises(error), meter:
        meter.begin("forward")
        raise error()
    assert not sampler_alive()
    assert fake.shutdowns == 1
    assert meter.summary().empty


def test_gpu_errors_mid_run_are_recorded_not_raised(powercap: Path) -> None:
    gpu = FakeGpu("GPU-a", update_s=0.001)
    with make_meter([gpu], powercap) as meter:
        with meter.window("forward"):
            time.sleep(0.15)
        gpu.fail_after = gpu.calls  # the GPU is lost from now on
        with meter.window("backward"):
            time.sleep(0.1)
        assert sampler_alive()
    before, after = meter.totals("forward"), meter.totals("backward")
    assert before is not None and before.provenance["gpu0"] == "measured"
    # the counter failed at both edges: the power trace (before the loss, held) stands in
    assert after is not None and after.provenance["gpu0"] == "sampled"
    errors = [e for e in meter.errors if e.source == "gpu0"]
    assert errors and all("GPU is lost" in e.message for e in errors)
    assert sum(e.count for e in errors) >= 3


def test_unavailable_sources_have_no_figures(tmp_path: Path) -> None:
    fake = FakeNvml([], init_error="Driver Not Loaded")
    meter = EnergyMeter(
        cpu="rapl",
        codecarbon=False,
        pynvml=fake,  # type: ignore[arg-type]
        powercap_root=tmp_path / "none",
    )
    with meter, meter.window("forward"):
        pass
    m = meter.totals("forward")
    assert m is not None
    assert m.energy_j == {"gpu": None, "cpu": None, "dram": None}
    assert set(m.provenance.values()) == {"unavailable"}
    assert m.total_energy_j is None
    row = meter.summary().iloc[0]
    assert row.isna()[["energy_j", "energy_j_gpu", "energy_j_cpu"]].all()
    assert energy_meta(meter)["sources"]["cpu"]["reason"].startswith("no ")


def test_idle_power(powercap: Path) -> None:
    with make_meter([FakeGpu("GPU-a", power_w=80.0, update_s=0.005)], powercap) as meter:
        assert meter.measure_idle(0) == {}
        idle = meter.measure_idle(0.3)
    assert idle["gpu0"] == pytest.approx(80.0, rel=0.1)
    assert idle["cpu"] == 0.0
    assert energy_meta(meter)["idle_power_w"] == idle
    assert meter.summary().empty  # idle is not a window


def test_trace_and_cross_check(powercap: Path) -> None:
    agree = FakeGpu("GPU-a", power_w=100.0, update_s=0.005)
    off = FakeGpu("GPU-b", power_w=100.0, update_s=0.005, reported_power_w=150.0)
    with make_meter([agree, off], powercap):
        time.sleep(0.3)
    meter = make_meter([agree, off], powercap)
    started = time.perf_counter()
    with meter:
        time.sleep(0.4)
    elapsed = time.perf_counter() - started
    trace = meter.trace()
    assert list(trace.columns) == [
        "time_s",
        "source",
        "power_w",
        "utilization_pct",
        "memory_used_mb",
        "sm_clock_mhz",
        "temperature_c",
    ]
    assert set(trace["source"]) == {"gpu0", "gpu1", "cpu", "dram"}
    gpu0 = trace[trace["source"] == "gpu0"]
    assert len(gpu0) >= 5 and (gpu0["power_w"] == 100.0).all()
    assert (gpu0["sm_clock_mhz"] == 1410.0).all()
    # one sampler thread writes the rows in order, all while the meter runs
    assert trace["time_s"].is_monotonic_increasing
    assert 0 <= trace["time_s"].min() <= trace["time_s"].max() < elapsed
    check = meter.cross_check()
    assert set(check) == {"gpu0", "gpu1"}
    assert check["gpu0"]["diverged"] is False
    assert abs(check["gpu0"]["relative_difference"]) < 0.05
    assert check["gpu1"]["diverged"] is True
    assert check["gpu1"]["relative_difference"] == pytest.approx(0.5, abs=0.05)


def test_emissions_and_bad_arguments() -> None:
    meter = EnergyMeter(country="fra", codecarbon=False)
    assert meter.country == "FRA"
    assert meter.emissions_kg(3.6e6) == pytest.approx(meter.carbon_intensity_g_per_kwh / 1000)
    with pytest.raises(ValueError, match="country"):
        EnergyMeter(country="XXX")
    with pytest.raises(ValueError, match="interval_s"):
        EnergyMeter(interval_s=0)
    with pytest.raises(ValueError, match="needs codecarbon"):
        EnergyMeter(cpu="codecarbon", codecarbon=False)


@pytest.mark.parametrize(("period_s", "expected"), [(0.05, "split"), (5.0, "unavailable")])
def test_short_rapl_window_is_never_measured(
    powercap: Path, monkeypatch: pytest.MonkeyPatch, period_s: float, expected: str
) -> None:
    """RAPL has no power readings: a window shorter than its update period is split over the
    sampler's counter history when that spans two periods, else it has no figure."""
    monkeypatch.setattr(RaplSource, "resolution_s", period_s)
    clock = FakeClock()
    meter = EnergyMeter(
        gpus=None,
        cpu="rapl",
        codecarbon=False,
        interval_s=0.02,
        powercap_root=powercap,
        clock=clock,
    )
    with meter:
        set_energy(powercap / "intel-rapl:0", 2_000_000)  # +1 J since the meter started
        clock.advance(0.15, meter)
        meter.begin("optimizer")
        clock.advance(0.001)  # a window is never instant: 1 ms, no reading inside it
        m = meter.end("optimizer")
    assert m.time_s < period_s
    assert m.provenance["cpu"] == m.provenance["dram"] == expected
    if expected == "split":
        assert 0 < m.energy_j["cpu"] < 1.0  # type: ignore[operator]
        assert m.energy_j["dram"] == 0.0
    else:
        assert m.energy_j == {"cpu": None, "dram": None}


def test_rapl_permission_denied_through_the_meter(
    powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_text = Path.read_text

    def deny(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", deny)
    meter = EnergyMeter(gpus=None, cpu="auto", codecarbon=False, powercap_root=powercap)
    with meter, meter.window("forward"):
        pass
    cpu, dram = meter.sources
    assert cpu.provenance == dram.provenance == "unavailable"
    assert "chmod" in (cpu.reason or "") and cpu.reason.endswith("CodeCarbon disabled")
    assert meter.totals("forward").energy_j == {"cpu": None, "dram": None}  # type: ignore[union-attr]


def test_environment_names_gpus_and_driver(powercap: Path) -> None:
    gpus = [FakeGpu("GPU-a", name="NVIDIA A100-SXM4-40GB"), FakeGpu("GPU-b", name="NVIDIA T4")]
    with make_meter(gpus, powercap) as meter:
        env = environment_meta(meter)
    assert env["gpus"] == ["NVIDIA A100-SXM4-40GB", "NVIDIA T4"]
    assert env["driver"] == "550.54.15"
    assert set(env) == {"python", "torch", "cuda", "platform", "cpu", "gpus", "driver"}
    energy = energy_meta(meter)
    assert set(energy) == {"sources", "idle_power_w", "country", "carbon_intensity_g_per_kwh"}
    assert energy["sources"]["gpu1"] == {
        "provenance": "measured",
        "reason": None,
        "device": "NVIDIA T4 (NVML index 1)",
    }
    assert list(energy["sources"]) == ["gpu0", "gpu1", "cpu", "dram"]
    assert (energy["country"], energy["idle_power_w"]) == ("USA", {})


def test_the_meter_holds_only_the_readings_not_yet_taken(tmp_path: Path) -> None:
    """With a fake clock the meter samples when told; taking the trace regularly keeps its
    memory to one chunk, and the windows still get every joule."""
    clock = FakeClock()
    meter = make_meter(
        [FakeGpu("GPU-a", power_w=100.0, counter=False)],
        tmp_path / "no-powercap",
        cpu=None,
        interval_s=0.1,
        clock=clock,
    )
    taken = []
    with meter:
        assert not sampler_alive()  # a fake clock: no sampler thread
        meter.begin("run")
        for tick in range(1, 20_001):
            clock.now += 0.1
            meter.sample()
            if tick % 1000 == 0:
                rows, seconds = meter.trace_held
                assert rows <= 1001 and seconds == pytest.approx(100.0 if rows > 1000 else 99.9)
                taken.append(meter.take_trace())
                assert meter.trace().empty and meter.trace_held == (0, 0.0)
        run = meter.end("run")
        power = meter._sampler.power["gpu0"]  # type: ignore[union-attr]
        assert power.count == 20_001 and len(power.times) < 200
        assert meter._sampler.rows.nbytes == 0  # type: ignore[union-attr]
    assert run.energy_j["gpu0"] == pytest.approx(100.0 * 2000.0)
    assert run.provenance["gpu0"] == "sampled"
    trace = pd.concat([*taken, meter.take_trace()], ignore_index=True)
    assert len(trace) == 20_002  # the first reading at start, 20,000 ticks, one at stop
    assert trace["time_s"].is_monotonic_increasing
    assert trace["time_s"].iloc[-1] == pytest.approx(2000.0)
