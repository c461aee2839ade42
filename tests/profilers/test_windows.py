from __future__ import annotations

import pytest

from ssprop_energy.profilers.traces import CounterHistory
from ssprop_energy.profilers.windows import (
    Approximation,
    Measurement,
    Readings,
    window_energy,
)
from ssprop_energy.provenance import LABELS

A = Approximation
PERIOD = 0.125  # the counter's update period, s (binary: the edge case below is exact)

# A window from 10.0 s to t1; the counter reads 500 J at t0; it drew 100 W over the last
# second (span_start); the power readings integrate to 7 J.
CASES = [
    # source, t1, counter at t0 and t1, span_start, samples_j -> joules, approximation
    ("measured", 10.5, (500.0, 550.0), (9.5, 450.0), 7.0, 50.0, A.COUNTER_DIFFERENCE),
    ("measured", 10.125, (500.0, 510.0), None, None, 10.0, A.COUNTER_DIFFERENCE),
    ("measured", 10.03, (500.0, 500.0), (9.03, 400.0), 7.0, 3.0, A.SPLIT_BY_TIME),
    ("measured", 10.03, (500.0, 510.0), (9.03, 410.0), None, 3.0, A.SPLIT_BY_TIME),
    ("measured", 10.03, (500.0, 500.0), (9.9, 490.0), 7.0, 7.0, A.SAMPLE_INTEGRAL),
    ("measured", 10.03, (500.0, 500.0), None, 7.0, 7.0, A.SAMPLE_INTEGRAL),
    ("measured", 10.03, (500.0, 510.0), None, None, None, A.NO_FIGURE),
    ("measured", 10.03, (500.0, 510.0), (9.9, 490.0), None, None, A.NO_FIGURE),
    ("measured", 10.5, (None, 550.0), (9.5, 450.0), 7.0, 7.0, A.SAMPLE_INTEGRAL),
    ("measured", 10.5, (500.0, None), (9.5, 450.0), None, None, A.NO_FIGURE),
    ("sampled", 10.5, (None, None), None, 7.0, 7.0, A.SAMPLE_INTEGRAL),
    ("sampled", 10.03, (None, None), None, 7.0, 7.0, A.SAMPLE_INTEGRAL),
    ("sampled", 10.5, (None, None), None, None, None, A.NO_FIGURE),
    ("estimated", 10.5, (None, None), None, 7.0, 7.0, A.MODEL_INTEGRAL),
    ("unavailable", 10.5, (500.0, 550.0), (9.5, 450.0), 7.0, None, A.NO_FIGURE),
]


@pytest.mark.parametrize(("source", "t1", "counter", "span", "samples", "joules", "how"), CASES)
def test_window_energy_rule(
    source: str,
    t1: float,
    counter: tuple[float | None, float | None],
    span: tuple[float, float] | None,
    samples: float | None,
    joules: float | None,
    how: Approximation,
) -> None:
    readings = Readings(10.0, t1, *counter, span_start=span, samples_j=samples)
    got, approximation = window_energy(source, PERIOD, readings)  # type: ignore[arg-type]
    assert approximation is how
    assert got == (None if joules is None else pytest.approx(joules))


@pytest.mark.parametrize("t1", [10.0, 10.001, 10.05, 10.1249])
@pytest.mark.parametrize("span", [None, (9.0, 400.0), (9.99, 499.0)])
@pytest.mark.parametrize("samples", [None, 7.0])
def test_a_window_shorter_than_the_counter_is_never_measured(
    t1: float, span: tuple[float, float] | None, samples: float | None
) -> None:
    readings = Readings(10.0, t1, 500.0, 500.0, span_start=span, samples_j=samples)
    joules, how = window_energy("measured", PERIOD, readings)
    assert how is not A.COUNTER_DIFFERENCE
    assert how.value in {"split", "sampled", "unavailable"}
    assert (joules is None) == (how is A.NO_FIGURE)


def test_every_approximation_is_a_provenance_label() -> None:
    assert sorted(a.value for a in Approximation) == sorted(LABELS)


def test_split_uses_the_counter_history() -> None:
    h = CounterHistory(span_s=1.0, interval_s=0.25)
    for i in range(10):
        h.append(i * 0.25, i * 25.0)  # 100 W
    end = Readings(2.45, 2.5, 245.0, 250.0, span_start=h.oldest())
    assert window_energy("measured", 0.1, end) == (pytest.approx(5.0), A.SPLIT_BY_TIME)
    # the kept history (from 1.25 s) spans less than two update periods before 1.4 s
    early = Readings(1.35, 1.4, 135.0, 140.0, span_start=h.oldest())
    assert window_energy("measured", 0.1, early)[1] is A.NO_FIGURE


def test_measurements_add_with_the_weaker_label() -> None:
    a = Measurement(
        "forward",
        1.0,
        {"gpu0": 10.0, "cpu": 2.0, "dram": None},
        {"gpu0": "measured", "cpu": "estimated", "dram": "unavailable"},
    )
    b = Measurement(
        "forward",
        0.5,
        {"gpu0": 1.5, "cpu": None, "dram": None},
        {"gpu0": "split", "cpu": "unavailable", "dram": "unavailable"},
    )
    both = a + b
    assert both.time_s == 1.5
    assert both.energy_j == {"gpu0": 11.5, "cpu": None, "dram": None}
    assert both.provenance == {"gpu0": "split", "cpu": "unavailable", "dram": "unavailable"}
    assert both.total_energy_j == 11.5


def test_a_source_missing_from_one_window_has_no_figure_in_the_sum() -> None:
    a = Measurement("step", 1.0, {"gpu0": 10.0}, {"gpu0": "measured"})
    b = Measurement("step", 1.0, {"gpu0": 10.0, "cpu": 3.0}, {"gpu0": "sampled", "cpu": "measured"})
    both = a + b
    assert both.energy_j == {"gpu0": 20.0, "cpu": None}
    assert both.provenance == {"gpu0": "sampled", "cpu": "unavailable"}
