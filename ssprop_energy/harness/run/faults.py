"""A run's faults: one line each in meta.json's ``notes``, and the energy sources whose
figures a fault leaves without support.

A metering fault never stops a run: it is a note (warned once, kept in meta.json, a flag in
the report), and a source that failed while an epoch was measured gives that epoch no figure
(``unavailable``, :func:`~ssprop_energy.provenance.combine`'s rule for a sum with a missing
part): a lost GPU's held readings must not stand in for the readings that never came."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ...profilers import EnergyMeter
from .metering import one_line

MAX_NOTES = 20
"""Distinct faults kept in meta.json's ``notes``; later ones are counted."""


@dataclass(frozen=True)
class MeterFault:
    """A source's failure as the meter counted it (``SamplerError``, under the run's name
    for the source)."""

    source: str
    message: str
    count: int


def meter_faults(meter: EnergyMeter | None) -> list[MeterFault]:
    """The faults ``meter`` has counted so far (none without a meter)."""
    if meter is None:
        return []
    return [MeterFault(e.source, e.message, e.count) for e in meter.errors]


class FaultNotes:
    """The run's faults, one line each, in the order first met; a line is warned once."""

    def __init__(self) -> None:
        self._lines: dict[str, str] = {}  # key -> the line as stored

    def note(self, text: str) -> None:
        line = text.splitlines()[0] if text else "unknown fault"
        self._add(line, line)

    def meter(self, faults: Iterable[MeterFault]) -> None:
        """The meter's faults: one line per source and message, with its count so far."""
        for fault in faults:
            key = f"{fault.source}: {fault.message}"
            self._add(key, f"{key} ({fault.count}x)")

    def _add(self, key: str, line: str) -> None:
        if key not in self._lines:
            warnings.warn(f"ssprop-energy: {line}", RuntimeWarning, stacklevel=4)
        self._lines[key] = line

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run the block; an exception becomes a note (never reaches the loop)."""
        try:
            yield
        except Exception as exc:
            self.note(f"{what}: {one_line(exc)}")

    @property
    def lines(self) -> list[str]:
        """Every line so far."""
        return list(self._lines.values())

    def stored(self) -> list[str]:
        """meta.json's ``notes``: the first ``MAX_NOTES`` lines, then how many more."""
        lines = self.lines
        notes = lines[:MAX_NOTES]
        if len(lines) > MAX_NOTES:
            notes.append(f"{len(lines) - MAX_NOTES} more distinct faults")
        return notes


class LostSources:
    """The sources that failed since the last look: their counted faults grew."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}

    def since_last(self, faults: Iterable[MeterFault]) -> set[str]:
        lost = set()
        for fault in faults:
            key = (fault.source, fault.message)
            if fault.count > self._seen.get(key, 0):
                lost.add(fault.source)
            self._seen[key] = fault.count
        return lost
