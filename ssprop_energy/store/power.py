"""A run's power trace on disk: append-only Parquet chunks, read lazily and downsampled.

Layout (docs/store.md): ``<run-id>/power/epoch-EEEEE-PPP.parquet`` holds readings taken
during epoch ``E`` (its parts ``P`` = 0, 1, ... in time order; the last part ends when the
epoch's row is stored), ``<run-id>/power/final-PPP.parquet`` the readings after the last
stored epoch. Each chunk is written once by the atomic writer and never rewritten. A run
resumed after ``N`` stored epochs drops the chunks of epochs ``>= N`` and the final ones,
as epochs.csv drops its rows past the checkpoint, so no reading is stored twice.

Runs stored before the chunks existed hold one ``power.csv``; it reads the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import UserError
from .atomic import atomic_write
from .schema import POWER, POWER_DIR

POWER_COLUMNS = ("time_s", "source", "power_w")
"""Columns every trace has (beside the GPU extras where NVML reports them)."""
CHUNK_NAME = re.compile(r"^(?:epoch-(\d{5})|final)-(\d{3})\.parquet$")
SKETCH_BINS = 256
"""At most this many bins per source in a trace's sketch."""
SKETCH_MIN_WIDTH_S = 0.125
"""The narrowest sketch bin: 1/8 s (bin widths are this times a power of two)."""
CSV_ROWS_AT_ONCE = 500_000
"""Rows of a stored power.csv read at once."""


class PowerTraceDamaged(UserError):
    """A power chunk or power.csv that does not parse or fit its schema (names the file)."""


@dataclass(frozen=True)
class Chunk:
    """One chunk file: the epoch its readings belong to (None: after the last epoch), its
    part within that epoch, and its path."""

    epoch: int | None
    part: int
    path: Path

    @classmethod
    def parse(cls, path: Path) -> Chunk | None:
        """The chunk a file name stands for; None for any other name."""
        match = CHUNK_NAME.match(path.name)
        if match is None:
            return None
        return cls(None if match[1] is None else int(match[1]), int(match[2]), path)

    @property
    def order(self) -> tuple[float, int]:
        return (math.inf if self.epoch is None else self.epoch, self.part)


def chunk_name(epoch: int | None, part: int) -> str:
    """``epoch-00012-000.parquet``, or ``final-000.parquet`` for ``epoch=None``."""
    return ("final" if epoch is None else f"epoch-{epoch:05d}") + f"-{part:03d}.parquet"


def chunks(run_dir: Path) -> list[Chunk]:
    """The run's chunks in time order (epochs, parts, then the final ones)."""
    folder = run_dir / POWER_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.parquet")):
        chunk = Chunk.parse(path)
        if chunk is None:
            raise PowerTraceDamaged(f"{path}: not a power chunk name")
        found.append(chunk)
    return sorted(found, key=lambda c: c.order)


def check_chunk(path: Path) -> None:
    """A chunk's schema, from its footer only: the trace columns, numbers but ``source``."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise PowerTraceDamaged(f"{path}: not a readable Parquet file ({exc})") from None
    for column in POWER_COLUMNS:
        if column not in schema.names:
            raise PowerTraceDamaged(f"{path}: no column {column!r}")
    for field in schema:
        numeric = pa.types.is_floating(field.type) or pa.types.is_integer(field.type)
        if field.name != "source" and not numeric:
            raise PowerTraceDamaged(f"{path}: column {field.name!r} holds text, not numbers")


def _last_time_s(path: Path) -> float:
    times = _read_chunk(path, ["time_s"]).column("time_s")
    return float(pc.max(times).as_py() or 0.0)


class PowerWriter:
    """Writes one run's power chunks, each once.

    ``epochs_kept``: the stored epochs the run continues from. Chunks of later epochs and
    the final ones are removed (their epochs are trained again), and the new readings'
    ``time_s`` (seconds since this session's meter started) is shifted to continue from the
    end of the last kept chunk, so a resumed run's trace is one time line."""

    def __init__(self, run_dir: Path | str, epochs_kept: int) -> None:
        self.folder = Path(run_dir) / POWER_DIR
        kept = []
        for chunk in chunks(Path(run_dir)):
            if chunk.epoch is None or chunk.epoch >= epochs_kept:
                chunk.path.unlink(missing_ok=True)
            else:
                kept.append(chunk)
        self.offset_s = _last_time_s(kept[-1].path) if kept else 0.0
        self._parts: dict[int | None, int] = {}
        self.bytes_written = 0

    def write(self, readings: pd.DataFrame, epoch: int | None) -> Path | None:
        """Store ``readings`` (the meter's trace columns) as the next part of ``epoch``
        (None: after the last epoch); nothing for no readings. Returns the chunk's path."""
        if readings.empty:
            return None
        part = self._parts.get(epoch, 0)
        path = self.folder / chunk_name(epoch, part)
        if path.exists():
            raise FileExistsError(f"{path}: a power chunk is never rewritten")
        table = pa.Table.from_pandas(
            readings.assign(time_s=readings["time_s"] + self.offset_s), preserve_index=False
        )
        atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))
        self._parts[epoch] = part + 1
        self.bytes_written += path.stat().st_size
        return path


@dataclass(frozen=True)
class PowerOverview:
    """A trace downsampled for charts (docs/store.md, "Reading a trace").

    ``epochs``: per source and epoch, ``samples``, ``time_s_start``, ``time_s_end``,
    ``power_w`` (mean), ``power_w_min``, ``power_w_max``. ``sketch``: per source at most
    :data:`SKETCH_BINS` bins of equal width ``width_s``: ``time_s`` (the bin's centre),
    ``samples``, ``power_w`` (mean), ``power_w_min``, ``power_w_max``."""

    epochs: pd.DataFrame
    sketch: pd.DataFrame
    width_s: float


EPOCH_COLUMNS = ["source", "epoch", "samples", "time_s_start", "time_s_end"]
STATS = ["power_w", "power_w_min", "power_w_max"]
SKETCH_COLUMNS = ["source", "time_s", "samples", *STATS]


class _Sketch:
    """Fixed-width bins of power per source, widened (merged in pairs) as the trace grows
    so they never number more than SKETCH_BINS per source."""

    def __init__(self) -> None:
        self.width = SKETCH_MIN_WIDTH_S
        self.bins: dict[str, dict[int, list[float]]] = {}
        self.low = math.inf
        self.high = -math.inf

    def _widen(self) -> None:
        self.width *= 2
        for source, bins in self.bins.items():
            merged: dict[int, list[float]] = {}
            for index, (n, total, lo, hi) in bins.items():
                into = merged.get(index // 2)
                if into is None:
                    merged[index // 2] = [n, total, lo, hi]
                else:
                    into[0] += n
                    into[1] += total
                    into[2] = min(into[2], lo)
                    into[3] = max(into[3], hi)
            self.bins[source] = merged

    def add(self, source: str, times: np.ndarray, power: np.ndarray) -> None:
        self.low, self.high = min(self.low, times.min()), max(self.high, times.max())
        while math.floor(self.high / self.width) - math.floor(self.low / self.width) >= (
            SKETCH_BINS
        ):
            self._widen()
        index = np.floor(times / self.width).astype(np.int64)
        if np.any(index[1:] < index[:-1]):
            order = np.argsort(index, kind="stable")
            index, power = index[order], power[order]
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        counts = np.diff(np.r_[starts, len(index)])
        sums = np.add.reduceat(power, starts)
        lows = np.minimum.reduceat(power, starts)
        highs = np.maximum.reduceat(power, starts)
        bins = self.bins.setdefault(source, {})
        for i, n, total, lo, hi in zip(index[starts], counts, sums, lows, highs, strict=True):
            into = bins.get(int(i))
            if into is None:
                bins[int(i)] = [float(n), float(total), float(lo), float(hi)]
            else:
                into[0] += n
                into[1] += total
                into[2] = min(into[2], lo)
                into[3] = max(into[3], hi)

    def frame(self) -> pd.DataFrame:
        rows = [
            (source, (i + 0.5) * self.width, int(n), total / n, lo, hi)
            for source, bins in self.bins.items()
            for i, (n, total, lo, hi) in sorted(bins.items())
        ]
        return pd.DataFrame(rows, columns=SKETCH_COLUMNS)


class StoredTrace:
    """A run's power trace as stored, read lazily: nothing is read until asked."""

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)

    @property
    def csv(self) -> Path:
        return self.run_dir / POWER

    def chunks(self) -> list[Chunk]:
        return chunks(self.run_dir)

    def check(self) -> None:
        """Every chunk's name and schema (footers only), or power.csv's header and end."""
        found = self.chunks()
        for chunk in found:
            check_chunk(chunk.path)
        if not found and self.csv.is_file():
            _check_csv_header(self.csv)

    def frames(self, columns: list[str] | None = None) -> Iterator[tuple[int | None, pd.DataFrame]]:
        """(epoch or None, readings) one chunk at a time; power.csv (no epochs) in slices."""
        found = self.chunks()
        for chunk in found:
            yield chunk.epoch, _read_chunk(chunk.path, columns).to_pandas()
        if not found and self.csv.is_file():
            yield from ((None, f) for f in _csv_slices(self.csv, columns))

    def read(self) -> pd.DataFrame:
        """Every reading at once (for short runs and tests; reports use ``overview``)."""
        frames = [f for _, f in self.frames()]
        if not frames:
            return pd.DataFrame()
        trace = pd.concat(frames, ignore_index=True)
        return trace.assign(source=trace["source"].astype(str))

    def _series(self) -> Iterator[tuple[int | None, str, np.ndarray, np.ndarray]]:
        """(epoch or None, source, times, power) per chunk and source, in time order."""
        columns = list(POWER_COLUMNS)
        found = self.chunks()
        tables = (
            ((c.epoch, _read_chunk(c.path, columns)) for c in found)
            if found
            else ((None, pa.Table.from_pandas(f)) for f in _csv_slices(self.csv, columns))
            if self.csv.is_file()
            else iter(())
        )
        for epoch, table in tables:
            source = table.column("source").combine_chunks()
            if not pa.types.is_dictionary(source.type):
                source = pc.dictionary_encode(source)
            codes = source.indices.to_numpy(zero_copy_only=False)
            times = table.column("time_s").to_numpy().astype(float, copy=False)
            power = table.column("power_w").to_numpy().astype(float, copy=False)
            for code, name in enumerate(source.dictionary.to_pylist()):
                rows = codes == code
                if rows.any():
                    yield epoch, str(name), times[rows], power[rows]

    def overview(self) -> PowerOverview:
        """Per-epoch statistics and the sketch, reading one chunk at a time (only
        ``time_s``, ``source`` and ``power_w``)."""
        sketch = _Sketch()
        epochs: dict[tuple[str, int], list[float]] = {}
        for epoch, source, times, power in self._series():
            sketch.add(source, times, power)
            if epoch is not None:
                _add_epoch(epochs, (source, epoch), times, power)
        rows = [
            (source, epoch, int(n), t0, t1, total / n, lo, hi)
            for (source, epoch), (n, t0, t1, total, lo, hi) in epochs.items()
        ]
        return PowerOverview(
            pd.DataFrame(rows, columns=EPOCH_COLUMNS + STATS), sketch.frame(), sketch.width
        )


def _read_chunk(path: Path, columns: list[str] | None) -> pa.Table:
    try:
        return pq.ParquetFile(path).read(columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise PowerTraceDamaged(f"{path}: cannot read ({exc})") from None


def _add_epoch(
    epochs: dict[tuple[str, int], list[float]],
    key: tuple[str, int],
    times: np.ndarray,
    power: np.ndarray,
) -> None:
    n, t0, t1 = len(times), float(times.min()), float(times.max())
    total, lo, hi = float(power.sum()), float(power.min()), float(power.max())
    into = epochs.get(key)
    if into is None:
        epochs[key] = [n, t0, t1, total, lo, hi]
    else:
        into[0] += n
        into[1], into[2] = min(into[1], t0), max(into[2], t1)
        into[3] += total
        into[4], into[5] = min(into[4], lo), max(into[5], hi)


def _check_csv_header(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            header = fh.readline().decode("utf-8").strip().split(",")
            fh.seek(0, 2)
            if fh.tell() == 0:
                return
            fh.seek(-1, 2)
            last = fh.read(1)
    except (OSError, UnicodeDecodeError) as exc:
        raise PowerTraceDamaged(f"{path}: cannot read ({exc})") from None
    if last != b"\n":
        raise PowerTraceDamaged(f"{path}: the last line is cut off (the file is truncated)")
    missing = [c for c in POWER_COLUMNS if c not in header]
    if missing:
        raise PowerTraceDamaged(f"{path}: no column {missing[0]!r}")


def _csv_slices(path: Path, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    try:
        reader = pd.read_csv(path, usecols=columns, chunksize=CSV_ROWS_AT_ONCE)
        for frame in reader:
            for column in frame.columns:
                if column == "source":
                    continue
                try:
                    frame[column] = pd.to_numeric(frame[column])
                except (ValueError, TypeError):
                    raise PowerTraceDamaged(
                        f"{path}: column {column!r} holds text, not numbers"
                    ) from None
            yield frame
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise PowerTraceDamaged(f"{path}: not a readable CSV file ({first})") from None
