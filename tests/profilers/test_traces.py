from __future__ import annotations

import random
from bisect import bisect_right

import pytest

from ssprop_energy.profilers.traces import KEPT_READINGS, CounterHistory, PowerTrace


def trace() -> PowerTrace:
    t = PowerTrace()
    for time_s, power in [(0.0, 10.0), (1.0, 20.0), (3.0, 20.0)]:
        t.append(time_s, power)
    return t


def between(t: PowerTrace, t0: float, t1: float) -> float | None:
    return t.energy_since(t.mark(t0), t1)


def test_trapezoid_integral_by_hand() -> None:
    t = trace()
    assert t.energy_j == [0.0, 15.0, 55.0]
    # power at 0.5 s is 15 W: 0.5 * (10 + 15) / 2; at 2 s: 15 + 1 * 20
    assert t.energy_at(0.5) == pytest.approx(6.25)
    assert between(t, 0.5, 2.0) == pytest.approx(35.0 - 6.25)
    assert between(t, 0.0, 3.0) == pytest.approx(55.0)


def test_hold_outside_the_samples() -> None:
    t = trace()
    assert t.energy_at(4.0) == pytest.approx(75.0)
    assert between(t, -1.0, 0.0) == pytest.approx(10.0)
    assert between(PowerTrace(), 0.0, 1.0) is None


def test_a_mark_before_the_first_reading_holds_the_first_reading() -> None:
    t = PowerTrace()
    mark = t.mark(-1.0)
    t.append(0.0, 10.0)
    t.append(1.0, 20.0)
    assert t.energy_since(mark, 1.0) == pytest.approx(10.0 + 15.0)


def test_out_of_order_samples_are_ignored() -> None:
    t = trace()
    t.append(2.0, 1000.0)
    assert len(t) == 3


class FullTrace:
    """The integration over every reading kept in memory (the meter's former rule): the
    reference the bounded trace must equal."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.power: list[float] = []
        self.energy: list[float] = []

    def append(self, t: float, p: float) -> None:
        energy = 0.0
        if self.times:
            if t <= self.times[-1]:
                return
            energy = self.energy[-1] + 0.5 * (self.power[-1] + p) * (t - self.times[-1])
        self.times.append(t)
        self.power.append(p)
        self.energy.append(energy)

    def energy_at(self, t: float) -> float:
        times, power, energy = self.times, self.power, self.energy
        i = bisect_right(times, t) - 1
        if i < 0:
            return power[0] * (t - times[0])
        dt = t - times[i]
        if i == len(times) - 1:
            return energy[i] + power[i] * dt
        slope = (power[i + 1] - power[i]) / (times[i + 1] - times[i])
        return energy[i] + power[i] * dt + 0.5 * slope * dt * dt


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_integration_equals_the_full_integration(seed: int) -> None:
    """Windows of every length (shorter than a reading's interval up to thousands of
    readings), opened and closed between readings, as the meter does."""
    rng = random.Random(seed)
    bounded, full = PowerTrace(), FullTrace()
    open_windows: list[tuple[float, object]] = []
    results: list[tuple[float, float, float | None, float]] = []
    now = 0.0
    for _ in range(20_000):
        now += rng.uniform(0.05, 0.15)
        power = rng.uniform(50.0, 400.0)
        bounded.append(now, power)
        full.append(now, power)
        now += rng.uniform(0.0, 0.02)
        if rng.random() < 0.3 or not open_windows:
            open_windows.append((now, bounded.mark(now)))
        if rng.random() < 0.3:
            t0, mark = open_windows.pop(rng.randrange(len(open_windows)))
            joules = bounded.energy_since(mark, now)  # type: ignore[arg-type]
            results.append((t0, now, joules, full.energy_at(now) - full.energy_at(t0)))
    assert len(results) > 1000
    assert max(t1 - t0 for t0, t1, *_ in results) > KEPT_READINGS * 0.2  # beyond those kept
    for _, _, joules, expected in results:
        assert joules == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_a_late_reading_before_a_mark_is_used_for_it() -> None:
    """The sampler may store a reading taken before a window's start after the start."""
    bounded, full = PowerTrace(), FullTrace()
    for t, p in [(0.0, 10.0), (1.0, 20.0)]:
        bounded.append(t, p)
        full.append(t, p)
    mark = bounded.mark(1.5)
    for t, p in [(1.4, 30.0), (2.0, 40.0)]:
        bounded.append(t, p)
        full.append(t, p)
    assert bounded.energy_since(mark, 2.0) == pytest.approx(
        full.energy_at(2.0) - full.energy_at(1.5)
    )


def test_the_trace_keeps_a_bounded_number_of_readings() -> None:
    t = PowerTrace()
    for i in range(100_000):
        t.append(i * 0.1, 100.0)
    assert len(t) == 100_000
    assert len(t.times) < 2 * KEPT_READINGS
    assert t.energy_at(100_000 * 0.1) == pytest.approx(100.0 * 100_000 * 0.1)
    with pytest.raises(ValueError, match="older than the readings"):
        t.energy_at(5.0)


def test_counter_history_keeps_its_last_span() -> None:
    h = CounterHistory(span_s=1.0, interval_s=0.25)
    assert h.oldest() is None
    for i in range(10):
        h.append(i * 0.25, i * 25.0)  # 100 W
    assert h.readings[0] == h.oldest() == (1.25, 125.0)  # only the last second is kept
    assert len(h.readings) == 5
