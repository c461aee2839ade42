"""The joules of one source over one window, and how they were obtained: one pure rule.

Inputs (:class:`Readings`): the window's edges ``t0``/``t1``; the source's energy counter at
both edges (None where it has none or a read failed); the oldest reading of the counter the
sampler still keeps (its last ``split_span_s`` seconds); and the trapezoid integral of the
source's power readings over the window (None without readings). The source's own label says
what it offers: a counter (``measured``), power readings (``sampled``), a model
(``estimated``) or nothing (``unavailable``).

The rule, first match wins; each step is a named :class:`Approximation` whose value is the
provenance label of the figure:

1. ``COUNTER_DIFFERENCE`` (``measured``): both counter readings exist and the window lasts at
   least the counter's update period ``resolution_s``. A shorter window is never
   ``measured``: a difference there reads 0 J or a whole update step.
2. ``SPLIT_BY_TIME`` (``split``), short windows only: the counter's mean power from its
   oldest kept reading to the window's end reading, times the window's duration. That span
   must last at least ``SPLIT_MIN_SPANS`` update periods; it cannot tell a 30 ms forward from
   a 30 ms backward drawing different power.
3. ``SAMPLE_INTEGRAL`` (``sampled``): the integral of power readings, for a source without a
   usable counter figure (no counter, a failed counter read, or a short window without
   enough counter history).
4. ``MODEL_INTEGRAL`` (``estimated``): the same integral over a model's readings
   (CodeCarbon's CPU model).
5. ``NO_FIGURE`` (``unavailable``): nothing above applies; the joules are None, never 0.

A :class:`Measurement` holds one window over every source; windows of one name add up
(``a + b``), each source's label by :func:`ssprop_energy.provenance.combine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..provenance import (
    ESTIMATED,
    MEASURED,
    SAMPLED,
    SPLIT,
    UNAVAILABLE,
    Provenance,
    combine,
)

SPLIT_MIN_SPANS = 2
"""A split's counter span lasts at least this many update periods (so it holds one step)."""


class Approximation(Enum):
    """How a window's joules were obtained; the value is the figure's provenance label."""

    COUNTER_DIFFERENCE = MEASURED
    SPLIT_BY_TIME = SPLIT
    SAMPLE_INTEGRAL = SAMPLED
    MODEL_INTEGRAL = ESTIMATED
    NO_FIGURE = UNAVAILABLE


@dataclass(frozen=True)
class Readings:
    """What the meter knows of one source over one window (times in ``perf_counter`` s)."""

    t0: float
    t1: float
    counter_start_j: float | None = None
    counter_end_j: float | None = None
    span_start: tuple[float, float] | None = None
    """(time, joules): the oldest counter reading the sampler keeps, None before the first."""
    samples_j: float | None = None
    """The integral of power readings over the window, None without readings."""


def window_energy(
    source: Provenance, resolution_s: float, readings: Readings
) -> tuple[float | None, Approximation]:
    """(joules or None, approximation) for one source over one window; see the module doc."""
    if source == UNAVAILABLE:
        return None, Approximation.NO_FIGURE
    r = readings
    duration = r.t1 - r.t0
    if source == MEASURED and r.counter_start_j is not None and r.counter_end_j is not None:
        if duration >= resolution_s:
            return r.counter_end_j - r.counter_start_j, Approximation.COUNTER_DIFFERENCE
        if r.span_start is not None:
            t_old, e_old = r.span_start
            if r.t1 - t_old >= SPLIT_MIN_SPANS * resolution_s:
                power_w = (r.counter_end_j - e_old) / (r.t1 - t_old)
                return power_w * duration, Approximation.SPLIT_BY_TIME
    if r.samples_j is None:
        return None, Approximation.NO_FIGURE
    if source == ESTIMATED:
        return r.samples_j, Approximation.MODEL_INTEGRAL
    return r.samples_j, Approximation.SAMPLE_INTEGRAL


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
        """Both windows together (keeps this name): times and joules add; per source, a sum
        of parts of one quantity (:func:`~ssprop_energy.provenance.combine`), so a source
        without a figure in either window has none in the sum."""
        energy: dict[str, float | None] = {}
        provenance: dict[str, str] = {}
        for source in self.energy_j.keys() | other.energy_j.keys():
            a, b = self.energy_j.get(source), other.energy_j.get(source)
            energy[source] = None if a is None or b is None else a + b
            provenance[source] = combine(
                [
                    self.provenance.get(source, UNAVAILABLE),
                    other.provenance.get(source, UNAVAILABLE),
                ]
            )
        return Measurement(self.name, self.time_s + other.time_s, energy, provenance)
