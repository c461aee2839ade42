"""GPU hygiene: what an NVIDIA GPU says about its state at the end of each epoch (its
temperature, SM clock, enforced power limit and the reasons its clocks are held down), as
an epoch row's columns (docs/energy.md#gpu-hygiene). The column kinds and the reason bits
that count as throttling are spelled in :mod:`ssprop_energy.columns`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..columns import HEALTH_KINDS, source_column


@dataclass(frozen=True)
class GpuHealth:
    """One reading of a GPU's state; None where the GPU does not report the figure.
    ``throttle_reasons``: NVML's bit mask (``nvmlDeviceGetCurrentClocksEventReasons``)."""

    temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    power_limit_w: float | None = None
    throttle_reasons: int | None = None


def health_columns(readings: Iterable[tuple[str, GpuHealth]]) -> dict[str, float]:
    """The epoch columns ``<kind>_<source>`` of (source name, reading) pairs, one per kind
    of ``HEALTH_KINDS``; NaN where a figure is missing."""
    row: dict[str, float] = {}
    for source, h in readings:
        values = (h.temperature_c, h.sm_clock_mhz, h.power_limit_w, h.throttle_reasons)
        for kind, value in zip(HEALTH_KINDS, values, strict=True):
            row[source_column(kind, source)] = math.nan if value is None else float(value)
    return row
