"""``RunSession``: the life of one run around its loop, for ``profile``'s trainer, a rank of a
distributed run and ``RunRecorder`` alike.

The session owns what every run writes besides its steps: the run's lock (when the caller
claims through it), meta.json, the meter (started, idle measured, stopped), the faults
(:mod:`.faults`: notes, and no figure from a source that failed), the power trace, each
epoch's row through the run's :class:`EpochSink`, the removal of temporary files, and how the
run ended. The exception that ends a run gives its status by one rule (:meth:`ending`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pandas as pd
import torch

from ...errors import UserError
from ...profilers import EnergyMeter
from ...store import (
    POWER_DIR,
    RANKS_DIR,
    RunLock,
    RunMeta,
    RunStore,
    Status,
    StoreConflict,
    remove_temp_files,
)
from ..config import EnergyConfig
from .build import RunContext
from .epoch import without_sources
from .faults import FaultNotes, LostSources, MeterFault, meter_faults
from .metering import now, one_line, start_metering
from .trace import TraceFlusher


class RunDiverged(Exception):
    """The training loss became NaN or infinite."""


EpochOut = tuple[dict[str, Any], pd.DataFrame | None, list[MeterFault]]
"""What an epoch's end stores: the run's row, its readings (None: the run's own meter's) and
the meter faults so far (every rank's, under the run's source names)."""


class EpochSink(Protocol):
    """Where a run's epochs go: this process's store (:class:`LocalSink`), or every rank's
    gathered to rank 0 (``harness.ranks.run.RankSink``)."""

    @property
    def writes(self) -> bool:
        """This process writes the store."""

    @property
    def part_s(self) -> float | None:
        """How often the power trace is stored within an epoch (None: ``trace.PART_S``)."""

    def device(self) -> torch.device | None:
        """The device to train on (None: the config's)."""

    def distribute(self, ctx: RunContext) -> None:
        """Train the built run as this process's part of the run."""

    def meter_options(self, energy: EnergyConfig) -> EnergyConfig:
        """This process's ``energy`` section."""

    def resume(
        self, first: Callable[[], tuple[int, int]], load: Callable[[], int]
    ) -> tuple[int, int]:
        """The first epoch to train and the epochs kept; ``first``: the run's own resume
        (on the writing process), ``load``: load the checkpoint (on the others)."""

    def start(self, meter: EnergyMeter, meta: RunMeta) -> None:
        """The started meter's entries of meta.json."""

    def end_epoch(
        self, row: dict[str, Any], meter: EnergyMeter | None, epoch: int
    ) -> EpochOut | None:
        """What the writing process stores of the epoch (None on the others)."""

    def agree(self, stop: bool) -> bool:
        """The writing process's ``stop`` on every process."""


class LocalSink:
    """The epochs of a run on one process: its own rows, readings and faults."""

    writes = True
    part_s: float | None = None

    def device(self) -> torch.device | None:
        return None

    def distribute(self, ctx: RunContext) -> None:
        pass

    def meter_options(self, energy: EnergyConfig) -> EnergyConfig:
        return energy

    def resume(
        self, first: Callable[[], tuple[int, int]], load: Callable[[], int]
    ) -> tuple[int, int]:
        return first()

    def start(self, meter: EnergyMeter, meta: RunMeta) -> None:
        pass

    def end_epoch(
        self, row: dict[str, Any], meter: EnergyMeter | None, epoch: int
    ) -> EpochOut | None:
        return row, None, meter_faults(meter)

    def agree(self, stop: bool) -> bool:
        return stop


class RunSession:
    """One run's life around its loop (see the module doc). ``contain``: a failure is
    recorded and the session's ``with`` block ends quietly (``profile`` on one process);
    otherwise every exception goes on once recorded (a rank, so the launch stops whole; a
    loop of one's own)."""

    def __init__(
        self,
        run_dir: Path,
        meta: RunMeta,
        sink: EpochSink | None = None,
        contain: bool = False,
        checkpoint: Path | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.meta = meta
        self.store = RunStore(run_dir)
        self.sink: EpochSink = sink or LocalSink()
        self.contain = contain
        self.checkpoint = checkpoint
        self.faults = FaultNotes()
        self.meter: EnergyMeter | None = None
        self.sources: list[str] = []
        self.trace: TraceFlusher | None = None
        self.lock: RunLock | None = None
        self.recorded = True
        """False when the run's end is not recorded (bad input while it was built: the
        stored run is left as it was; a StoreConflict: another process writes it)."""
        self.diverged: str | None = None
        self.status: Status = "running"
        self.error: str | None = None
        self._lost = LostSources()

    @property
    def writes(self) -> bool:
        return self.sink.writes

    # -- start ---------------------------------------------------------------------------

    def claim(self) -> None:
        """Claim the run (its lock) and write meta.json as it starts."""
        self.lock = RunLock.claim(self.run_dir)
        self.lock.__enter__()
        try:
            self.store.write_meta(self.meta)
        except BaseException:
            self.lock.release()
            raise

    def start_meter(self, meter: EnergyMeter, energy: EnergyConfig, epochs_kept: int) -> None:
        """Start ``meter``, measure idle power into meta.json, and store its readings from
        ``epochs_kept`` on; the meter is stopped again when this fails."""
        try:
            meter.start()
            start_metering(meter, energy, self.meta)
            self.sink.start(meter, self.meta)
            self.sources = [s.name for s in meter.sources]
            if self.writes:
                writer = self.store.power_writer(epochs_kept)
                self.trace = TraceFlusher(meter, writer, self.sink.part_s)
        except BaseException:
            meter.stop()
            raise
        self.meter = meter

    def stop_meter(self) -> None:
        """Stop the meter (idempotent); its faults become notes."""
        if self.meter is not None:
            with self.faults.guard("energy meter"):
                self.meter.stop()
            self.faults.meter(meter_faults(self.meter))

    # -- as it goes ----------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.faults.note(text)

    def after_step(self, epoch: int) -> None:
        """Store a part of the power trace when one is due."""
        if self.trace is not None:
            with self.faults.guard("power trace"):
                self.trace.after_step(epoch)

    def emissions_kg(self, energy_j: float) -> float:
        return self.meter.emissions_kg(energy_j) if self.meter is not None else math.nan

    def end_epoch(
        self,
        row: dict[str, Any],
        epoch: int,
        after: Callable[[dict[str, Any], int], bool],
        announce: Callable[[dict[str, Any]], None] | None = None,
    ) -> bool:
        """Store the epoch (``row``: this process's, with ``run_id``) through the sink, a
        source that failed during it without a figure; on the writing process call
        ``after(row, epochs_done)`` (True: the run stops), write meta.json, then
        ``announce(row)``. Returns whether the run stops, the same on every rank."""
        lost = self._lost.since_last(meter_faults(self.meter))
        row = without_sources(row, lost, self.sources, self.emissions_kg)
        out = self.sink.end_epoch(row, self.meter, epoch)
        stop = False
        if out is not None:
            row, readings, faults = out
            self.faults.meter(faults)
            epochs = self.store.append_epoch(row)
            if self.trace is not None:
                with self.faults.guard("power trace"):
                    self.trace.end_epoch(epoch, readings)
            self.meta.epochs_done = len(epochs)
            stop = after(row, len(epochs))
            self.save_meta()
            if announce is not None:
                announce(row)
        return self.sink.agree(stop)

    def on_writer(self, write: Callable[[], object]) -> None:
        """Call ``write`` on the process that writes the store only (rank 0 of a
        distributed run)."""
        if self.writes:
            write()

    def save_meta(self) -> None:
        if self.writes:
            self.meta.notes = self.faults.stored()
            self.store.write_meta(self.meta)

    # -- the end -------------------------------------------------------------------------

    def ending(self, exc: BaseException | None) -> tuple[Status, str | None]:
        """The run's status and error from the exception that ended it (None: none)."""
        if exc is None:
            return ("finished", None) if self.diverged is None else ("diverged", self.diverged)
        if isinstance(exc, RunDiverged):
            return "diverged", str(exc)
        if isinstance(exc, KeyboardInterrupt):
            return "interrupted", None
        return "failed", one_line(exc)

    def finish(self, exc: BaseException | None, epochs_done: int) -> bool:
        """Record how the run ended (status, error, notes, the rest of the power trace),
        remove temporary files and release the lock. True when the caller goes on without
        ``exc`` (``contain``: a failure other than bad input or another process's write)."""
        self.status, self.error = self.ending(exc)
        if isinstance(exc, StoreConflict):
            self.recorded = False
        try:
            self.stop_meter()
            if self.recorded and self.writes:
                self._record_end(exc, epochs_done)
        finally:
            self._remove_temp_files()
            if self.lock is not None:
                self.lock.release()
        if self.status == "finished" and self.writes and self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)
        contained = isinstance(exc, Exception) and not isinstance(exc, UserError | StoreConflict)
        return self.contain and contained

    def _record_end(self, exc: BaseException | None, epochs_done: int) -> None:
        """meta.json says how the run ended (written first: it matters most), then the power
        readings after the last stored epoch. While an exception propagates, a failed write
        is a note, never raised over it."""
        if exc is not None:
            with self.faults.guard("store"):
                self._write_end(epochs_done)
        else:
            self._write_end(epochs_done)

    def _write_end(self, epochs_done: int) -> None:
        meta = self.meta
        meta.status, meta.error, meta.finished_at = self.status, self.error, now()
        meta.epochs_done = epochs_done
        self.save_meta()
        if self.trace is not None:
            self.trace.end_run()

    def _remove_temp_files(self) -> None:
        if not self.writes:
            return
        ranks = self.run_dir / RANKS_DIR
        folders = sorted(p for p in ranks.iterdir() if p.is_dir()) if ranks.is_dir() else []
        for folder in (self.run_dir, *folders):
            remove_temp_files(folder)
            remove_temp_files(folder / POWER_DIR)

    def __enter__(self) -> RunSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.finish(exc, self.meta.epochs_done)
