"""Histories the sampler thread writes and the main thread reads, each bounded in memory.

``PowerTrace`` integrates power readings as they come and keeps only its last readings;
``CounterHistory`` keeps an energy counter's last span. Neither grows with the run's length.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass

KEPT_READINGS = 64
"""Readings a :class:`PowerTrace` keeps (at least): enough to look up the present."""


@dataclass
class Mark:
    """A point in time whose integral a window needs later (its start): ``energy_j`` is
    filled in once the reading after ``t`` arrives, so no older reading has to be kept."""

    t: float
    energy_j: float | None = None


class PowerTrace:
    """Power readings of one source with their running trapezoid integral.

    ``energy_at(t)`` is the integral from the first reading to ``t``: linear interpolation of
    power between readings (trapezoid rule), the last reading held after the last one, the
    first reading held before the first one. A window marks its start (:meth:`mark`) and
    asks ``energy_since(mark, t1)`` when it ends: the mark's integral is computed when the
    first reading after it arrives, from the two readings around it, so the trace keeps
    only its last :data:`KEPT_READINGS` readings whatever the run's length and the windows'
    lengths. Every method is safe to call from the sampler and the main thread at once.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.power_w: list[float] = []
        self.energy_j: list[float] = []
        self.count = 0
        """Readings appended so far (``times`` holds the last of them)."""
        self._first: tuple[float, float] | None = None
        self._pending: list[Mark] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.count

    def append(self, t: float, power_w: float) -> None:
        """Add a reading; one not later than the last is ignored (the clock is monotonic)."""
        with self._lock:
            energy = 0.0
            if self.times:
                last = len(self.times) - 1
                if t <= self.times[last]:
                    return
                energy = self.energy_j[last] + 0.5 * (self.power_w[last] + power_w) * (
                    t - self.times[last]
                )
            else:
                self._first = (t, power_w)
            self.times.append(t)
            self.power_w.append(power_w)
            self.energy_j.append(energy)
            self.count += 1
            if self._pending:
                due = [m for m in self._pending if m.t < t]
                for mark in due:
                    mark.energy_j = self._at(mark.t)
                self._pending = [m for m in self._pending if m.t >= t]
            if len(self.times) >= 2 * KEPT_READINGS:
                del self.times[:KEPT_READINGS]
                del self.power_w[:KEPT_READINGS]
                del self.energy_j[:KEPT_READINGS]

    def _at(self, t: float) -> float | None:
        """The integral at ``t`` from the kept readings (caller holds the lock)."""
        times, power, energy = self.times, self.power_w, self.energy_j
        n = len(times)
        if n == 0:
            return None
        i = bisect_right(times, t) - 1
        if i < 0:
            if self._first is None or self._first[0] != times[0]:
                raise ValueError(f"t={t} is older than the readings this trace keeps")
            return power[0] * (t - times[0])
        dt = t - times[i]
        if i == n - 1:
            return energy[i] + power[i] * dt
        slope = (power[i + 1] - power[i]) / (times[i + 1] - times[i])
        return energy[i] + power[i] * dt + 0.5 * slope * dt * dt

    def energy_at(self, t: float) -> float | None:
        """The integral at ``t``, for ``t`` within the kept readings or later (the present);
        None before the first reading."""
        with self._lock:
            return self._at(t)

    def mark(self, t: float) -> Mark:
        """Remember ``t`` (a window's start) for :meth:`energy_since`."""
        with self._lock:
            mark = Mark(t)
            if self.times and self.times[-1] > t:
                mark.energy_j = self._at(t)
            else:
                self._pending.append(mark)
            return mark

    def energy_since(self, mark: Mark, t1: float) -> float | None:
        """Joules from ``mark`` to ``t1`` (the present); None without readings."""
        with self._lock:
            start = mark.energy_j if mark.energy_j is not None else self._at(mark.t)
            end = self._at(t1)
        if start is None or end is None:
            return None
        return end - start


class CounterHistory:
    """The readings of an energy counter over its last ``span_s`` seconds (for splits)."""

    def __init__(self, span_s: float, interval_s: float) -> None:
        self.readings: deque[tuple[float, float]] = deque(
            maxlen=max(2, round(span_s / interval_s) + 1)
        )

    def append(self, t: float, energy_j: float) -> None:
        self.readings.append((t, energy_j))

    def oldest(self) -> tuple[float, float] | None:
        """(time, joules) of the oldest kept reading, None before the first."""
        try:
            return self.readings[0]
        except IndexError:
            return None
