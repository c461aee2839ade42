from __future__ import annotations

import pytest

from ssprop_energy.profilers.traces import CounterHistory, PowerTrace


def trace() -> PowerTrace:
    t = PowerTrace()
    for time_s, power in [(0.0, 10.0), (1.0, 20.0), (3.0, 20.0)]:
        t.append(time_s, power)
    return t


def test_trapezoid_integral_by_hand() -> None:
    t = trace()
    assert t.energy_j == [0.0, 15.0, 55.0]
    # power at 0.5 s is 15 W: 0.5 * (10 + 15) / 2; at 2 s: 15 + 1 * 20
    assert t.energy_at(0.5) == pytest.approx(6.25)
    assert t.energy_between(0.5, 2.0) == pytest.approx(35.0 - 6.25)
    assert t.energy_between(0.0, 3.0) == pytest.approx(55.0)


def test_hold_outside_the_samples() -> None:
    t = trace()
    assert t.energy_at(4.0) == pytest.approx(75.0)
    assert t.energy_between(-1.0, 0.0) == pytest.approx(10.0)
    assert PowerTrace().energy_between(0.0, 1.0) is None


def test_out_of_order_samples_are_ignored() -> None:
    t = trace()
    t.append(2.0, 1000.0)
    assert len(t) == 3


def test_counter_history_keeps_its_last_span() -> None:
    h = CounterHistory(span_s=1.0, interval_s=0.25)
    assert h.oldest() is None
    for i in range(10):
        h.append(i * 0.25, i * 25.0)  # 100 W
    assert h.readings[0] == h.oldest() == (1.25, 125.0)  # only the last second is kept
    assert len(h.readings) == 5
