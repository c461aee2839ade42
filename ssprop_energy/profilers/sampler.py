"""The background sampler: reads every source at a fixed interval into traces.

Per source and tick: a counter is read into its :class:`CounterHistory` (and its power over
the last tick is derived from it for the trace); a power reading is appended to its
:class:`PowerTrace` and to the trace rows. The trace rows wait in a :class:`TraceBuffer`
until the owner takes them (``take``), so the sampler holds only the readings since then.
The sampler never raises into the training loop: each failure is recorded in ``errors``
(one entry per source and message, with a count).
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .sources import EnergySource, PowerReading
from .traces import CounterHistory, PowerTrace

TRACE_COLUMNS = (
    "time_s",
    "source",
    "power_w",
    "utilization_pct",
    "memory_used_mb",
    "sm_clock_mhz",
    "temperature_c",
)
_NUMBERS = tuple(c for c in TRACE_COLUMNS if c != "source")


def _number(value: float | None) -> float:
    return math.nan if value is None else value


class TraceBuffer:
    """Trace rows column by column (8 bytes a number, 2 a source), until taken."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self._codes = {name: i for i, name in enumerate(sources)}
        self._source = array("H")
        self._numbers = {column: array("d") for column in _NUMBERS}

    def __len__(self) -> int:
        return len(self._source)

    @property
    def nbytes(self) -> int:
        """Bytes the rows take (the arrays' contents)."""
        arrays: list[array[Any]] = [self._source, *self._numbers.values()]
        return sum(a.itemsize * len(a) for a in arrays)

    @property
    def first_time_s(self) -> float:
        return self._numbers["time_s"][0]

    def append(self, time_s: float, source: str, reading: PowerReading) -> None:
        numbers = self._numbers
        numbers["time_s"].append(time_s)
        numbers["power_w"].append(reading.power_w)
        numbers["utilization_pct"].append(_number(reading.utilization_pct))
        numbers["memory_used_mb"].append(_number(reading.memory_used_mb))
        numbers["sm_clock_mhz"].append(_number(reading.sm_clock_mhz))
        numbers["temperature_c"].append(_number(reading.temperature_c))
        self._source.append(self._codes[source])  # last: the row is complete

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (columns ``TRACE_COLUMNS``; ``source`` categorical)."""
        n = len(self._source)
        data: dict[str, object] = {
            c: np.frombuffer(a, dtype=np.float64, count=n).copy() for c, a in self._numbers.items()
        }
        codes = np.frombuffer(self._source, dtype=np.uint16, count=n).astype(np.int32)
        data["source"] = pd.Categorical.from_codes(codes, categories=self.sources)
        return pd.DataFrame(data, columns=list(TRACE_COLUMNS))


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
        clock: Callable[[], float] = time.perf_counter,
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
        self.clock = clock
        self.rows = TraceBuffer([s.name for s in self.sources])
        self._rows_lock = threading.Lock()
        self.errors: dict[tuple[str, str], SamplerError] = {}
        self._last_counter: dict[str, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, thread: bool = True) -> None:
        """Take the first readings, then (``thread``) sample every ``interval_s`` on a daemon
        thread; without it the owner calls ``tick`` (a simulation with a fake clock)."""
        self.tick()
        if thread:
            self._thread = threading.Thread(
                target=self._run, name="ssprop-energy-sampler", daemon=True
            )
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

    def take(self) -> pd.DataFrame:
        """The trace rows since the last ``take`` (or the start); the sampler forgets them."""
        with self._rows_lock:
            rows, self.rows = self.rows, TraceBuffer(self.rows.sources)
        return rows.frame()

    def held(self) -> pd.DataFrame:
        """The trace rows not yet taken (a copy; the sampler keeps them)."""
        with self._rows_lock:
            return self.rows.frame()

    def held_span(self, now_s: float) -> tuple[int, float]:
        """(rows, seconds from the first row not yet taken to ``now_s``), 0 s when none."""
        with self._rows_lock:
            rows = self.rows
            return len(rows), (now_s - rows.first_time_s) if len(rows) else 0.0

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
            t = self.clock()
            energy = source.energy_j()
            self.counters[name].append(t, energy)
            last = self._last_counter.get(name)
            if last is not None and t > last[0]:
                derived_w = (energy - last[1]) / (t - last[0])
            self._last_counter[name] = (t, energy)
        reading = source.sample()
        t = self.clock()
        if reading is not None:
            self.power[name].append(t, reading.power_w)
        elif derived_w is not None:
            reading = PowerReading(derived_w)
        if reading is not None:
            with self._rows_lock:
                self.rows.append(t - self.t_origin, name, reading)

    def record_error(self, source: str, message: str) -> None:
        key = (source, message)
        if key in self.errors:
            self.errors[key].count += 1
        else:
            self.errors[key] = SamplerError(self.clock() - self.t_origin, source, message)
