"""Append-only histories the sampler thread writes and the main thread reads.

Both are safe without locks in CPython: the writer appends to the time list last, and a
reader takes ``n = len(times)`` first and then only looks at the first ``n`` entries.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque


class PowerTrace:
    """Power samples with their running trapezoid integral (joules at each sample time).

    ``energy_at(t)`` is the integral from the first sample to ``t``: linear interpolation of
    power between samples (trapezoid rule) and the last reading held after the last sample,
    the first reading held before the first one. A window's energy is
    ``energy_at(t1) - energy_at(t0)``, computed when the window ends.
    """

    def __init__(self) -> None:
        self.power_w: list[float] = []
        self.energy_j: list[float] = []
        self.times: list[float] = []

    def __len__(self) -> int:
        return len(self.times)

    def append(self, t: float, power_w: float) -> None:
        """Add a reading; one not later than the last is ignored (the clock is monotonic)."""
        energy = 0.0
        if self.times:
            last = len(self.times) - 1
            if t <= self.times[last]:
                return
            energy = self.energy_j[last] + 0.5 * (self.power_w[last] + power_w) * (
                t - self.times[last]
            )
        self.power_w.append(power_w)
        self.energy_j.append(energy)
        self.times.append(t)  # last: readers see complete entries only

    def energy_at(self, t: float) -> float | None:
        n = len(self.times)
        if n == 0:
            return None
        times, power, energy = self.times, self.power_w, self.energy_j
        i = bisect_right(times, t, 0, n) - 1
        if i < 0:
            return power[0] * (t - times[0])
        dt = t - times[i]
        if i == n - 1:
            return energy[i] + power[i] * dt
        slope = (power[i + 1] - power[i]) / (times[i + 1] - times[i])
        return energy[i] + power[i] * dt + 0.5 * slope * dt * dt

    def energy_between(self, t0: float, t1: float) -> float | None:
        start, end = self.energy_at(t0), self.energy_at(t1)
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
