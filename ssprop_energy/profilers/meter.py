"""``EnergyMeter``: named windows over every energy source, with honest provenance.

    meter = EnergyMeter(gpus="auto", cpu="auto", codecarbon=True, country="USA", interval_s=0.1)
    with meter:
        meter.measure_idle(3.0)
        with meter.window("forward"):
            ...
        m = meter.end("backward")   # after meter.begin("backward")
    meter.summary(); meter.trace()

How a window's joules are obtained, per source (``Measurement.provenance``):

- ``measured``: an energy counter (NVML total energy, RAPL) read at both window edges;
- ``split``: the window is shorter than the counter's update period (``resolution_s``,
  ~100 ms for NVML), so a counter difference would read 0 J or a whole update step. The
  counter's mean power over the last ``split_span_s`` seconds (read by the sampler) times
  the window's duration is charged instead: the energy of a longer span of the counter,
  split by time. It cannot tell a 30 ms forward from a 30 ms backward at different power;
  accumulate longer windows where that matters;
- ``sampled``: trapezoid integral of the sampler's power readings (GPUs without the counter,
  or a counter read that failed at a window edge);
- ``estimated``: the same integral over CodeCarbon's CPU model (no RAPL);
- ``unavailable``: no figure (``None``), never a silent 0.

A window repeated under one name accumulates; a sum of parts carries its weakest label
(measured < sampled < split < estimated) and is ``unavailable`` if any part had no figure.
Windows of different names may nest. The GPU is synchronised at every window edge.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Literal

import pandas as pd

from .carbon import CodeCarbonRun, carbon_intensity_g_per_kwh, emissions_kg
from .environment import environment, gpu_models
from .nvml import NvmlSession
from .rapl import POWERCAP_ROOT, rapl_sources
from .sampler import TRACE_COLUMNS, Sampler, SamplerError
from .sources import EnergySource, SourceInfo, UnavailableSource, weakest

CpuMode = Literal["auto", "rapl", "codecarbon"]
DIVERGENCE_THRESHOLD = 0.05
"""Counter and integrated power samples further apart than this are flagged."""


@dataclass(frozen=True)
class Measurement:
    """One window (or the accumulated windows of one name): seconds, joules, provenance."""

    name: str
    time_s: float
    energy_j: dict[str, float | None]
    provenance: dict[str, str]

    @property
    def total_energy_j(self) -> float | None:
        """All sources that have a figure, summed; None when none has."""
        known = [e for e in self.energy_j.values() if e is not None]
        return sum(known) if known else None

    def __add__(self, other: Measurement) -> Measurement:
        """Both windows together (keeps this name): times and joules add, a source without
        a figure in either is ``unavailable``, else the sum carries the weaker label."""
        energy: dict[str, float | None] = {}
        provenance: dict[str, str] = {}
        for source in self.energy_j.keys() | other.energy_j.keys():
            a, b = self.energy_j.get(source), other.energy_j.get(source)
            energy[source] = None if a is None or b is None else a + b
            provenance[source] = (
                "unavailable"
                if energy[source] is None
                else weakest([self.provenance[source], other.provenance[source]])
            )
        return Measurement(self.name, self.time_s + other.time_s, energy, provenance)


@dataclass
class _Open:
    t0: float
    counters: dict[str, float | None]


@dataclass
class _Totals:
    count: int = 0
    sum: Measurement | None = None

    def add(self, m: Measurement) -> None:
        self.count += 1
        self.sum = m if self.sum is None else self.sum + m


def _cuda_sync() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class EnergyMeter:
    """Energy per named window for every GPU, the CPU and DRAM, with emissions.

    ``gpus``: ``"auto"`` (all CUDA-visible GPUs), a list of CUDA indices, or None.
    ``cpu``: ``"auto"`` (RAPL, else CodeCarbon's model), ``"rapl"``, ``"codecarbon"`` or None.
    ``codecarbon``: run CodeCarbon's offline tracker beside the meter (its output is kept in
    ``codecarbon_result``). ``country``/``region``: for the carbon intensity.
    ``interval_s``: the sampler's period. ``powercap_root``, ``pynvml`` and ``sync`` are
    injectable for tests (``sync`` runs at every window edge; default: CUDA synchronise).
    """

    def __init__(
        self,
        gpus: str | list[int] | None = "auto",
        cpu: CpuMode | None = "auto",
        codecarbon: bool = True,
        country: str = "USA",
        region: str | None = None,
        interval_s: float = 0.1,
        *,
        split_span_s: float = 1.0,
        powercap_root: Path = POWERCAP_ROOT,
        pynvml: ModuleType | None = None,
        sync: Callable[[], None] | None = None,
    ) -> None:
        if gpus is not None and gpus != "auto" and not isinstance(gpus, list):
            raise ValueError(f"gpus must be 'auto', a list of indices or None, got {gpus!r}")
        if cpu not in ("auto", "rapl", "codecarbon", None):
            raise ValueError(f"cpu must be 'auto', 'rapl', 'codecarbon' or None, got {cpu!r}")
        if cpu == "codecarbon" and not codecarbon:
            raise ValueError("cpu='codecarbon' needs codecarbon=True")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.gpus = gpus
        self.cpu = cpu
        self.codecarbon = codecarbon
        self.country = country.strip().upper()
        self.region = region
        self.interval_s = interval_s
        self.split_span_s = split_span_s
        self.carbon_intensity_g_per_kwh = carbon_intensity_g_per_kwh(self.country, region)
        self.idle_power_w: dict[str, float] = {}
        self.codecarbon_result: dict[str, Any] | None = None
        self._powercap_root = powercap_root
        self._pynvml = pynvml
        self._sync_arg = sync
        self._sync: Callable[[], None] = sync or (lambda: None)
        self._sources: list[EnergySource] = []
        self._nvml: NvmlSession | None = None
        self._carbon: CodeCarbonRun | None = None
        self._sampler: Sampler | None = None
        self._open: dict[str, _Open] = {}
        self._totals: dict[str, _Totals] = {}
        self._edges: dict[str, tuple[float, ...]] = {}
        self._driver: str | None = None
        self._started = self._stopped = False
        self._t_origin = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Find the sources, start CodeCarbon and the sampler."""
        if self._started:
            raise RuntimeError("an EnergyMeter can be started once")
        self._started = True
        self._t_origin = time.perf_counter()
        try:
            self._nvml = NvmlSession(self._pynvml) if self.gpus is not None else None
            gpu_sources = self._nvml.sources(self.gpus) if self._nvml else []
            self._driver = self._nvml.driver_version() if self._nvml else None
            if self.codecarbon:
                self._carbon = CodeCarbonRun(self.country, self.region)
                self._carbon.start()
            self._sources = gpu_sources + self._cpu_sources()
            if self._sync_arg is None and any(
                s.name.startswith("gpu") and s.info.provenance != "unavailable"
                for s in self._sources
            ):
                self._sync = _cuda_sync
            self._sampler = Sampler(
                self._sources, self.interval_s, self._t_origin, self.split_span_s
            )
            self._sampler.start()
            self._edges = {
                s.name: edge
                for s in self._sampler.sources
                if s.is_counter and (edge := self._read_edge(s))
            }
        except BaseException:
            self.stop()
            raise

    def _cpu_sources(self) -> list[EnergySource]:
        """``cpu`` (RAPL, else CodeCarbon's model where allowed) and RAPL's ``dram``."""
        if self.cpu is None:
            return []
        rapl = rapl_sources(self._powercap_root) if self.cpu != "codecarbon" else {}
        dram = [rapl["dram"]] if rapl else []
        reasons: list[str] = []
        if rapl:
            if rapl["cpu"].info.provenance != "unavailable":
                return [rapl["cpu"], *dram]
            reasons.append(rapl["cpu"].info.reason or "RAPL unavailable")
        if self.cpu != "rapl":
            if self._carbon is None:
                reasons.append("CodeCarbon disabled")
            else:
                estimate = self._carbon.cpu_source()
                if estimate.info.provenance != "unavailable":
                    return [estimate, *dram]
                reasons.append(estimate.info.reason or "no CodeCarbon CPU model")
        return [UnavailableSource("cpu", "; ".join(reasons)), *dram]

    def stop(self) -> None:
        """Stop the sampler and CodeCarbon and release NVML; idempotent. Open windows are
        dropped."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        self._open.clear()
        try:
            if self._sampler is not None:
                self._sampler.stop()
                by_name = {s.name: s for s in self._sources}
                self._edges = {
                    name: (*edge, *end)
                    for name, edge in self._edges.items()
                    if (end := self._read_edge(by_name[name]))
                }
        finally:
            if self._carbon is not None:
                self._carbon.stop()
                self.codecarbon_result = self._carbon.result
            for source in self._sources:
                source.close()
            if self._nvml is not None:
                self._nvml.close()

    def _read_edge(self, source: EnergySource) -> tuple[float, float] | tuple[()]:
        """(time, counter) for the whole-run cross-check; empty if the counter fails."""
        try:
            return time.perf_counter(), source.energy_j()
        except Exception as exc:
            self._record_error(source.name, exc)
            return ()

    # -- windows ---------------------------------------------------------------------

    def begin(self, name: str) -> None:
        """Open window ``name`` (synchronising the GPU first)."""
        if not self._started or self._stopped:
            raise RuntimeError("start the EnergyMeter (with meter: ...) before opening windows")
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        self._totals.setdefault(name, _Totals())  # summary rows in order of first begin
        self._sync()
        self._open[name] = _Open(time.perf_counter(), self._read_counters())

    def end(self, name: str) -> Measurement:
        """Close window ``name``, add it to the totals of that name and return it."""
        try:
            opened = self._open.pop(name)
        except KeyError:
            raise ValueError(f"window {name!r} is not open") from None
        measurement = self._measure(name, opened)
        self._totals[name].add(measurement)
        return measurement

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[None]:
        """``with meter.window("backward"): ...``: begin/end around the block."""
        self.begin(name)
        try:
            yield
        finally:
            self.end(name)

    def measure_idle(self, seconds: float) -> dict[str, float]:
        """Sleep ``seconds`` and return the mean power (W) of every source with a figure.

        Kept in ``idle_power_w``; not part of ``summary()``. ``seconds <= 0`` skips it."""
        if seconds <= 0:
            self.idle_power_w = {}
            return {}
        if not self._started or self._stopped:
            raise RuntimeError("start the EnergyMeter before measuring idle power")
        self._sync()
        opened = _Open(time.perf_counter(), self._read_counters())
        time.sleep(seconds)
        m = self._measure("idle", opened)
        self.idle_power_w = {name: e / m.time_s for name, e in m.energy_j.items() if e is not None}
        return dict(self.idle_power_w)

    def _read_counters(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        for source in self._sources:
            if source.is_counter:
                try:
                    values[source.name] = source.energy_j()
                except Exception as exc:
                    values[source.name] = None
                    self._record_error(source.name, exc)
        return values

    def _record_error(self, source: str, exc: Exception) -> None:
        if self._sampler is not None:
            self._sampler.record_error(source, f"{type(exc).__name__}: {exc}")

    def _measure(self, name: str, opened: _Open) -> Measurement:
        self._sync()
        t1 = time.perf_counter()
        duration = t1 - opened.t0
        ends = self._read_counters()
        energy: dict[str, float | None] = {}
        provenance: dict[str, str] = {}
        for source in self._sources:
            key = source.name
            energy[key], provenance[key] = self._source_energy(
                source, opened.t0, t1, opened.counters.get(key), ends.get(key)
            )
        return Measurement(name, duration, energy, provenance)

    def _source_energy(
        self, source: EnergySource, t0: float, t1: float, e0: float | None, e1: float | None
    ) -> tuple[float | None, str]:
        provenance = source.info.provenance
        if provenance == "unavailable" or self._sampler is None:
            return None, "unavailable"
        key = source.name
        if source.is_counter and e0 is not None and e1 is not None:
            if t1 - t0 >= source.resolution_s:
                return e1 - e0, "measured"
            rate = self._sampler.counters[key].mean_power_w(t1, e1, 2 * source.resolution_s)
            if rate is not None:
                return rate * (t1 - t0), "split"
            if not len(self._sampler.power[key]):
                return e1 - e0, "measured"
        integral = self._sampler.power[key].energy_between(t0, t1)
        if integral is None:
            return None, "unavailable"
        return integral, "sampled" if source.is_counter else provenance

    # -- results ---------------------------------------------------------------------

    @property
    def sources(self) -> list[SourceInfo]:
        """Every source of this meter: name, provenance, reason, device."""
        if not self._started:
            raise RuntimeError("start the EnergyMeter to discover its sources")
        return [s.info for s in self._sources]

    @property
    def errors(self) -> list[SamplerError]:
        """Failures while sampling or reading counters (the meter never raises them)."""
        return list(self._sampler.errors.values()) if self._sampler else []

    def totals(self, name: str) -> Measurement | None:
        """All windows named ``name`` so far, accumulated (None if never closed)."""
        totals = self._totals.get(name)
        if totals is None or totals.sum is None:
            return None
        names = [s.name for s in self._sources]  # in source order
        m = totals.sum
        return Measurement(
            name, m.time_s, {n: m.energy_j[n] for n in names}, {n: m.provenance[n] for n in names}
        )

    def emissions_kg(self, energy_j: float) -> float:
        """Emissions (kg CO2eq) of ``energy_j`` joules at the configured country's intensity."""
        return emissions_kg(energy_j, self.carbon_intensity_g_per_kwh)

    def summary(self) -> pd.DataFrame:
        """One row per window name: ``window``, ``count``, ``time_s``, ``energy_j``,
        ``emissions_kg`` and per source ``energy_j_<source>``, ``provenance_<source>``."""
        names = [s.name for s in self._sources]
        columns = ["window", "count", "time_s", "energy_j", "emissions_kg"]
        columns += [f"energy_j_{n}" for n in names] + [f"provenance_{n}" for n in names]
        rows = []
        for window, totals in self._totals.items():
            m = self.totals(window)
            if m is None:
                continue
            total = m.total_energy_j
            row: dict[str, Any] = {
                "window": window,
                "count": totals.count,
                "time_s": m.time_s,
                "energy_j": math.nan if total is None else total,
                "emissions_kg": math.nan if total is None else self.emissions_kg(total),
            }
            for n in names:
                value = m.energy_j[n]
                row[f"energy_j_{n}"] = math.nan if value is None else value
                row[f"provenance_{n}"] = m.provenance[n]
            rows.append(row)
        return pd.DataFrame(rows, columns=columns)

    def trace(self) -> pd.DataFrame:
        """The sampler's readings: ``time_s`` (since start), ``source``, ``power_w``,
        ``utilization_pct``, ``memory_used_mb``, ``sm_clock_mhz``, ``temperature_c``."""
        rows = list(self._sampler.rows) if self._sampler else []
        return pd.DataFrame(rows, columns=list(TRACE_COLUMNS))

    def cross_check(self) -> dict[str, dict[str, float | bool]]:
        """For sources with both a counter and power readings (NVML), over the whole run:
        ``counter_j``, ``sampled_j``, ``relative_difference`` and ``diverged`` (> 5%)."""
        result: dict[str, dict[str, float | bool]] = {}
        if self._sampler is None or not self._stopped:
            return result
        for name, edge in self._edges.items():
            trace = self._sampler.power[name]
            if len(edge) != 4 or len(trace) < 2:
                continue
            t0, e0, t1, e1 = edge
            sampled = trace.energy_between(t0, t1)
            counter = e1 - e0
            if sampled is None or counter <= 0:
                continue
            diff = (sampled - counter) / counter
            result[name] = {
                "counter_j": counter,
                "sampled_j": sampled,
                "relative_difference": diff,
                "diverged": abs(diff) > DIVERGENCE_THRESHOLD,
            }
        return result

    def energy_meta(self) -> dict[str, Any]:
        """The ``energy`` entry of a run's meta.json (see docs/store.md)."""
        return {
            "sources": {
                s.name: {"provenance": s.provenance, "reason": s.reason, "device": s.device}
                for s in self.sources
            },
            "idle_power_w": dict(self.idle_power_w),
            "country": self.country,
            "carbon_intensity_g_per_kwh": self.carbon_intensity_g_per_kwh,
        }

    def environment(self) -> dict[str, Any]:
        """The ``environment`` entry of meta.json: python, torch, cuda, platform, cpu, gpus,
        driver."""
        return environment(gpus=gpu_models(self._sources), driver=self._driver)
