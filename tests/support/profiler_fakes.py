"""Fakes at the hardware boundary: a ``pynvml`` module, a powercap tree, CodeCarbon's CPU
model; and a simulated clock for a meter that should not wait real seconds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

from ssprop_energy.profilers.sources import (
    EnergySource,
    PowerReading,
    SourceInfo,
    UnavailableSource,
)


class Sampled(Protocol):
    """What :meth:`FakeClock.advance` samples: an ``EnergyMeter`` built with ``clock=``."""

    interval_s: float

    def sample(self) -> None: ...


class FakeClock:
    """Simulated monotonic seconds, for ``EnergyMeter(clock=...)`` and ``FakeGpu(clock=...)``.

    A meter with a clock starts no sampler thread; :meth:`advance` moves time on and, given
    the meter, takes a reading every ``interval_s`` on the way, as that thread would."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float, meter: Sampled | None = None) -> None:
        end = self.now + seconds
        if meter is not None:
            ticks = math.floor(seconds / meter.interval_s + 1e-9)
            start = self.now
            for i in range(1, ticks + 1):
                self.now = start + i * meter.interval_s
                meter.sample()
        self.now = end


class FakeNVMLError(Exception):
    """Stands in for ``pynvml.NVMLError``."""


@dataclass
class FakeGpu:
    """A GPU drawing ``power_w`` (changed with :meth:`set_power`); its counter holds the
    energy drawn up to its last update, every ``update_s`` seconds, like NVML's.

    ``counter``: whether the total-energy counter is supported. ``reported_power_w``: what
    ``nvmlDeviceGetPowerUsage`` says (defaults to the true power; with ``power_mean_s``, the
    mean power over the last that many seconds, as NVML reports on Ampere and newer).
    ``reported_noise_w``: the reading alternates this far above and below it.
    ``fail_after``: counter and power calls raise after this many calls (errors mid-run).
    ``clock``: the time in seconds (a simulated one for tests that do not sleep).
    ``temperature_c``, ``sm_clock_mhz``, ``power_limit_mw``, ``throttle_reasons``: what the
    health calls report (``extras`` False: not supported)."""

    uuid: str
    name: str = "Fake A100"
    power_w: float = 100.0
    counter: bool = True
    update_s: float = 0.1
    reported_power_w: float | None = None
    reported_noise_w: float = 0.0
    extras: bool = True
    fail_after: int | None = None
    power_mean_s: float = 0.0
    clock: Callable[[], float] = time.perf_counter
    temperature_c: int = 61
    sm_clock_mhz: int = 1410
    power_limit_mw: int = 400_000
    throttle_reasons: int = 0
    """NVML's clock event reason mask (``0x4`` power cap, ``0x40`` hardware thermal, ...)."""

    def __post_init__(self) -> None:
        self.t0 = self.clock()
        self.calls = 0
        self._segments = [(self.t0, 0.0, self.power_w)]  # (from, joules drawn by then, watts)

    def set_power(self, power_w: float) -> None:
        """Draw ``power_w`` from now on."""
        now = self.clock()
        self._segments.append((now, self.drawn_j(now), power_w))
        self.power_w = power_w

    def drawn_j(self, t: float) -> float:
        """The true energy drawn from creation to ``t``."""
        start, joules, watts = next(s for s in reversed(self._segments) if s[0] <= t)
        return joules + watts * (t - start)

    def _tick(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise FakeNVMLError("GPU is lost")

    def energy_mj(self) -> int:
        self._tick()
        steps = math.floor((self.clock() - self.t0) / self.update_s)
        return round(self.drawn_j(self.t0 + steps * self.update_s) * 1000)

    def power_mw(self) -> int:
        self._tick()
        reported = self.power_w if self.reported_power_w is None else self.reported_power_w
        if self.power_mean_s > 0 and self.reported_power_w is None:
            now = self.clock()
            since = max(self.t0, now - self.power_mean_s)
            if now > since:
                reported = (self.drawn_j(now) - self.drawn_j(since)) / (now - since)
        reported += self.reported_noise_w * (-1) ** self.calls
        return round(reported * 1000)


class FakeNvml:
    """Module-level pynvml functions over a list of :class:`FakeGpu`."""

    NVMLError = FakeNVMLError
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[FakeGpu], init_error: str | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = False
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error:
            raise FakeNVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        assert self.initialised
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> bytes:
        return gpu.name.encode()

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:
        return gpu.uuid

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        if not gpu.counter:
            raise FakeNVMLError("Not Supported")
        return gpu.energy_mj()

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        return gpu.power_mw()

    def _extra(self, gpu: FakeGpu) -> None:
        if not gpu.extras:
            raise FakeNVMLError("Not Supported")

    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGpu) -> SimpleNamespace:
        self._extra(gpu)
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        self._extra(gpu)
        return SimpleNamespace(used=3 * 2**30, total=40 * 2**30)

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, kind: int) -> int:
        self._extra(gpu)
        assert kind == self.NVML_CLOCK_SM
        return gpu.sm_clock_mhz

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, kind: int) -> int:
        self._extra(gpu)
        assert kind == self.NVML_TEMPERATURE_GPU
        return gpu.temperature_c

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:
        self._extra(gpu)
        return gpu.power_limit_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: FakeGpu) -> int:
        self._extra(gpu)
        return gpu.throttle_reasons


def write_zone(
    root: Path, name: str, label: str, energy_uj: int, max_uj: int = 262143328850
) -> Path:
    """Create a powercap zone folder (``name`` may be nested: ``intel-rapl:0/intel-rapl:0:2``)."""
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


class FakeCpuModel(EnergySource):
    """A CPU model drawing a constant ``power_w`` (stands in for CodeCarbon's)."""

    def __init__(self, power_w: float = 40.0) -> None:
        self.info = SourceInfo("cpu", "estimated", None, "fake CPU model")
        self.power_w = power_w

    def sample(self) -> PowerReading:
        return PowerReading(self.power_w)


@dataclass
class FakeCarbon:
    """Stands in for a started ``CodeCarbonRun``: ``cpu_source`` gives ``model`` (a
    :class:`FakeCpuModel`, or an ``unavailable`` stand-in saying ``reason``) or raises
    ``error``."""

    model: EnergySource | None = None
    reason: str = "CodeCarbon found no CPU model"
    error: Exception | None = None

    def cpu_source(self) -> EnergySource:
        if self.error is not None:
            raise self.error
        return self.model or UnavailableSource("cpu", self.reason)
