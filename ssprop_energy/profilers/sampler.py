"""The background sampler: reads every source at a fixed interval into traces.

Per source and tick: a counter is read into its :class:`CounterHistory` (and its power over
the last tick is derived from it for the trace); a power reading is appended to its
:class:`PowerTrace` and to the trace rows. The sampler never raises into the training loop:
each failure is recorded in ``errors`` (one entry per source and message, with a count).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .sources import EnergySource
from .traces import CounterHistory, PowerTrace

TraceRow = tuple[float, str, float, float | None, float | None, float | None, float | None]
TRACE_COLUMNS = (
    "time_s",
    "source",
    "power_w",
    "utilization_pct",
    "memory_used_mb",
    "sm_clock_mhz",
    "temperature_c",
)


@dataclass
class SamplerError:
    """A failure while sampling ``source``; ``count`` times, first at ``time_s``."""

    time_s: float
    source: str
    message: str
    count: int = 1


class Sampler:
    """Samples ``sources`` every ``interval_s`` seconds on a daemon thread."""

    def __init__(
        self,
        sources: list[EnergySource],
        interval_s: float,
        t_origin: float,
        split_span_s: float = 1.0,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.sources = [s for s in sources if s.info.provenance != "unavailable"]
        self.interval_s = interval_s
        self.t_origin = t_origin
        self.power = {s.name: PowerTrace() for s in self.sources}
        self.counters = {
            s.name: CounterHistory(split_span_s, interval_s) for s in self.sources if s.is_counter
        }
        self.rows: list[TraceRow] = []
        self.errors: dict[tuple[str, str], SamplerError] = {}
        self._last_counter: dict[str, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.tick()
        self._thread = threading.Thread(target=self._run, name="ssprop-energy-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.tick()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def tick(self) -> None:
        for source in self.sources:
            try:
                self._sample(source)
            except Exception as exc:  # never into the training loop
                self.record_error(source.name, f"{type(exc).__name__}: {exc}")

    def _sample(self, source: EnergySource) -> None:
        name = source.name
        derived_w: float | None = None
        if source.is_counter:
            t = time.perf_counter()
            energy = source.energy_j()
            self.counters[name].append(t, energy)
            last = self._last_counter.get(name)
            if last is not None and t > last[0]:
                derived_w = (energy - last[1]) / (t - last[0])
            self._last_counter[name] = (t, energy)
        reading = source.sample()
        t = time.perf_counter()
        if reading is not None:
            self.power[name].append(t, reading.power_w)
            self.rows.append(
                (
                    t - self.t_origin,
                    name,
                    reading.power_w,
                    reading.utilization_pct,
                    reading.memory_used_mb,
                    reading.sm_clock_mhz,
                    reading.temperature_c,
                )
            )
        elif derived_w is not None:
            self.rows.append((t - self.t_origin, name, derived_w, None, None, None, None))

    def record_error(self, source: str, message: str) -> None:
        key = (source, message)
        if key in self.errors:
            self.errors[key].count += 1
        else:
            self.errors[key] = SamplerError(time.perf_counter() - self.t_origin, source, message)
