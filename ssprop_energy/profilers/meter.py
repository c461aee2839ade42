"""``EnergyMeter``: named windows over every energy source, with honest provenance.

    meter = EnergyMeter(gpus="auto", cpu="auto", codecarbon=True, country="USA", interval_s=0.1)
    with meter:
        meter.measure_idle(3.0)
        with meter.window("forward"):
            ...
        m = meter.end("backward")   # after meter.begin("backward")
    meter.summary(); meter.take_trace()

The meter owns the lifecycle (CodeCarbon, the sampler thread, the open windows) and the
accumulated totals. The parts it calls are tested on their own: finding the sources
(:mod:`.discovery`), the joules of one source over one window and their label
(:func:`.windows.window_energy`), and the meta.json entries (:mod:`.meta`).

A window repeated under one name accumulates (:class:`~.windows.Measurement` addition);
windows of different names may nest. The GPU is synchronised at every window edge, so queued
kernels are charged to the window that launched them.
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
from typing import Any

import pandas as pd

from ..columns import ENERGY, PROVENANCE, source_column
from ..provenance import UNAVAILABLE
from .carbon import CodeCarbonRun, carbon_intensity_g_per_kwh, emissions_kg
from .discovery import CpuMode, GpuSelection, Hardware, discover
from .health import health_columns
from .meter_view import meter_html
from .rapl import POWERCAP_ROOT
from .sampler import TRACE_COLUMNS, Sampler, SamplerError
from .sources import EnergySource, SourceInfo
from .traces import Mark
from .windows import Measurement, Readings, window_energy

DIVERGENCE_THRESHOLD = 0.05
"""Counter and integrated power samples further apart than this are flagged."""


@dataclass
class _Open:
    t0: float
    counters: dict[str, float | None]
    marks: dict[str, Mark]


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
    ``cpu``: ``"auto"`` (RAPL, else the CPU estimate), ``"rapl"``, ``"codecarbon"`` or None.
    ``codecarbon``: run CodeCarbon's offline tracker beside the meter (its output is kept in
    ``codecarbon_result``). ``country``/``region``: for the carbon intensity.
    ``interval_s``: the sampler's period; ``split_span_s``: the counter history it keeps for
    windows too short for a counter (:mod:`.windows`). ``powercap_root``, ``pynvml`` and
    ``sync`` are injectable for tests (``sync`` runs at every window edge; default: CUDA
    synchronise). ``clock`` (seconds, monotonic) replaces ``time.perf_counter`` for a
    simulation: the meter then starts no sampler thread, and the caller takes each reading
    with ``sample()``.
    """

    def __init__(
        self,
        gpus: GpuSelection = "auto",
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
        clock: Callable[[], float] | None = None,
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
        self._clock = clock or time.perf_counter
        self._threaded = clock is None
        self._hardware = Hardware([])
        self._carbon: CodeCarbonRun | None = None
        self._sampler: Sampler | None = None
        self._open: dict[str, _Open] = {}
        self._totals: dict[str, _Totals] = {}
        self._edges: dict[str, tuple[float, ...]] = {}
        self._edge_marks: dict[str, Mark] = {}
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
        """Start CodeCarbon, find the sources (:func:`~.discovery.discover`), start the
        sampler."""
        if self._started:
            raise RuntimeError("an EnergyMeter can be started once")
        self._started = True
        self._t_origin = self._clock()
        try:
            if self.codecarbon:
                self._carbon = CodeCarbonRun(self.country, self.region)
                self._carbon.start()
            self._hardware = discover(
                self.gpus,
                self.cpu,
                self._carbon,
                powercap_root=self._powercap_root,
                pynvml=self._pynvml,
            )
            if self._sync_arg is None and any(
                s.name.startswith("gpu") and s.info.provenance != UNAVAILABLE
                for s in self._hardware.sources
            ):
                self._sync = _cuda_sync
            self._sampler = Sampler(
                self._hardware.sources,
                self.interval_s,
                self._t_origin,
                self.split_span_s,
                self._clock,
            )
            self._sampler.start(thread=self._threaded)
            self._edges = {
                s.name: edge
                for s in self._sampler.sources
                if s.is_counter and (edge := self._read_edge(s))
            }
            self._edge_marks = {
                name: self._sampler.power[name].mark(edge[0]) for name, edge in self._edges.items()
            }
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the sampler and CodeCarbon and release the sources; idempotent. Open windows
        are dropped."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        self._open.clear()
        try:
            if self._sampler is not None:
                self._sampler.stop()
                by_name = {s.name: s for s in self._hardware.sources}
                self._edges = {
                    name: (*edge, *end)
                    for name, edge in self._edges.items()
                    if (end := self._read_edge(by_name[name]))
                }
        finally:
            if self._carbon is not None:
                self._carbon.stop()
                self.codecarbon_result = self._carbon.result
            self._hardware.close()

    def _read_edge(self, source: EnergySource) -> tuple[float, float] | tuple[()]:
        """(time, counter) for the whole-run cross-check; empty if the counter fails."""
        try:
            return self._clock(), source.energy_j()
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
        self._open[name] = self._open_window()

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
        opened = self._open_window()
        time.sleep(seconds)
        m = self._measure("idle", opened)
        self.idle_power_w = {name: e / m.time_s for name, e in m.energy_j.items() if e is not None}
        return dict(self.idle_power_w)

    def _open_window(self) -> _Open:
        """Synchronise, then the window's start: its time, counters and power marks."""
        self._sync()
        t0 = self._clock()
        counters = self._read_counters()
        assert self._sampler is not None  # started
        marks = {name: trace.mark(t0) for name, trace in self._sampler.power.items()}
        return _Open(t0, counters, marks)

    def _read_counters(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        for source in self._hardware.sources:
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
        t1 = self._clock()
        ends = self._read_counters()
        assert self._sampler is not None  # started
        energy: dict[str, float | None] = {}
        provenance: dict[str, str] = {}
        for source in self._hardware.sources:
            key = source.name
            history = self._sampler.counters.get(key)
            trace = self._sampler.power.get(key)
            readings = Readings(
                opened.t0,
                t1,
                opened.counters.get(key),
                ends.get(key),
                span_start=None if history is None else history.oldest(),
                samples_j=None if trace is None else trace.energy_since(opened.marks[key], t1),
            )
            energy[key], how = window_energy(source.info.provenance, source.resolution_s, readings)
            provenance[key] = how.value
        return Measurement(name, t1 - opened.t0, energy, provenance)

    # -- results ---------------------------------------------------------------------

    @property
    def sources(self) -> list[SourceInfo]:
        """Every source of this meter: name, provenance, reason, device."""
        if not self._started:
            raise RuntimeError("start the EnergyMeter to discover its sources")
        return [s.info for s in self._hardware.sources]

    def health(self) -> dict[str, float]:
        """Each GPU source's state now as epoch columns (:func:`.health.health_columns`):
        ``gpu_temp_c_<source>``, ``sm_clock_mhz_<source>``, ``power_limit_w_<source>``,
        ``throttle_reasons_<source>``; empty without a GPU source."""
        readings = [(s.name, s.health()) for s in self._hardware.sources]
        return health_columns((name, h) for name, h in readings if h is not None)

    @property
    def update_period_s(self) -> float:
        """The longest update period among the sources with a figure: a counter's
        ``resolution_s``, the sampler's ``interval_s`` for power readings and models (0 when
        no source has a figure). A window as long as a few of these is read directly."""
        if not self._started:
            raise RuntimeError("start the EnergyMeter to discover its sources")
        periods = [
            s.resolution_s if s.is_counter else self.interval_s
            for s in self._hardware.sources
            if s.info.provenance != UNAVAILABLE
        ]
        return max(periods, default=0.0)

    @property
    def hardware(self) -> Hardware:
        """What discovery found (sources, GPU models, driver); read it, do not close it."""
        if not self._started:
            raise RuntimeError("start the EnergyMeter to discover its hardware")
        return self._hardware

    @property
    def errors(self) -> list[SamplerError]:
        """Failures while sampling or reading counters (the meter never raises them)."""
        return list(self._sampler.errors.values()) if self._sampler else []

    def totals(self, name: str) -> Measurement | None:
        """All windows named ``name`` so far, accumulated (None if never closed)."""
        totals = self._totals.get(name)
        if totals is None or totals.sum is None:
            return None
        names = [s.name for s in self._hardware.sources]  # in source order
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
        names = [s.name for s in self._hardware.sources]
        columns = ["window", "count", "time_s", "energy_j", "emissions_kg"]
        columns += [source_column(ENERGY, n) for n in names]
        columns += [source_column(PROVENANCE, n) for n in names]
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
                row[source_column(ENERGY, n)] = math.nan if value is None else value
                row[source_column(PROVENANCE, n)] = m.provenance[n]
            rows.append(row)
        return pd.DataFrame(rows, columns=columns)

    def sample(self) -> None:
        """Take one reading of every source now (a meter with a ``clock`` has no sampler
        thread to do it)."""
        if self._sampler is None or self._stopped:
            raise RuntimeError("start the EnergyMeter before sampling")
        self._sampler.tick()

    def _repr_html_(self) -> str:
        """The sources and the summary table with a row of totals (for Jupyter;
        :func:`.meter_view.meter_html`)."""
        if not self._started:
            return meter_html(None, [], pd.DataFrame(), ("", 0.0))
        state = "running" if not self._stopped else "stopped"
        place = (self.country, self.carbon_intensity_g_per_kwh)
        return meter_html(state, self.sources, self.summary(), place)

    def trace(self) -> pd.DataFrame:
        """The readings not yet taken: ``time_s`` (since start), ``source``, ``power_w``,
        ``utilization_pct``, ``memory_used_mb``, ``sm_clock_mhz``, ``temperature_c``."""
        if self._sampler is None:
            return pd.DataFrame(columns=list(TRACE_COLUMNS))
        return self._sampler.held()

    def take_trace(self) -> pd.DataFrame:
        """The readings since the last ``take_trace`` (columns as ``trace()``); the meter
        forgets them, so a caller that takes them regularly bounds the meter's memory."""
        if self._sampler is None:
            return pd.DataFrame(columns=list(TRACE_COLUMNS))
        return self._sampler.take()

    @property
    def trace_held(self) -> tuple[int, float]:
        """(rows, seconds) of readings not yet taken: their count and the time they span
        from the first to now."""
        if self._sampler is None:
            return 0, 0.0
        return self._sampler.held_span(self._clock() - self._t_origin)

    def cross_check(self) -> dict[str, dict[str, float | bool]]:
        """For sources with both a counter and power readings (NVML), over the whole run:
        ``counter_j``, ``sampled_j``, ``relative_difference`` and ``diverged`` (> 5%)."""
        result: dict[str, dict[str, float | bool]] = {}
        if self._sampler is None or not self._stopped:
            return result
        for name, edge in self._edges.items():
            trace, mark = self._sampler.power[name], self._edge_marks.get(name)
            if len(edge) != 4 or len(trace) < 2 or mark is None:
                continue
            _, e0, t1, e1 = edge
            sampled = trace.energy_since(mark, t1)
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
