"""The run's power readings, moved from the meter into the store's chunks as the run goes,
so the meter holds at most one chunk (docs/store.md, "power/")."""

from __future__ import annotations

import pandas as pd

from ...profilers import EnergyMeter
from ...store import PowerWriter

PART_S = 600.0
"""An epoch's readings are stored at least every 10 minutes (one part each)."""


class TraceFlusher:
    """Moves the meter's readings into ``writer``: a part when they span ``part_s`` seconds
    (checked after every step), the rest of an epoch when its row is stored (or the readings
    given then: a distributed run's, gathered from every rank), and what comes after the
    last epoch when the run ends."""

    def __init__(
        self, meter: EnergyMeter, writer: PowerWriter, part_s: float | None = None
    ) -> None:
        self.meter = meter
        self.writer = writer
        self.part_s = PART_S if part_s is None else part_s

    def after_step(self, epoch: int) -> None:
        if self.meter.trace_held[1] >= self.part_s:
            self.writer.write(self.meter.take_trace(), epoch)

    def end_epoch(self, epoch: int, readings: pd.DataFrame | None = None) -> None:
        self.writer.write(self.meter.take_trace() if readings is None else readings, epoch)

    def end_run(self) -> None:
        self.writer.write(self.meter.take_trace(), None)
