"""Reading and writing run folders of the results store (docs/store.md).

Every write goes through the atomic writer; errors name the file and say what went wrong.
Every read checks the file against its schema: a file that does not parse or does not fit
makes the run ``damaged``, with a note naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from ..errors import UserError
from .atomic import (
    atomic_write,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    csv_text,
)
from .checks import (
    StoreConflict,
    StoreDamaged,
    check_blocks,
    check_epochs,
    check_estimate,
    check_gates,
    check_inference,
    check_matrix,
    check_phase_calibration,
    check_sampling,
    read_csv,
)
from .lock import live_holder
from .meta import META_SCHEMA, EstimateMeta, RunMeta
from .migrate import UnknownFormat, migrate_meta
from .power import PowerTraceDamaged, PowerWriter, StoredTrace
from .schema import (
    BLOCKS,
    DAMAGED,
    EPOCHS,
    ESTIMATE,
    ESTIMATE_RECORDED,
    GATES,
    INFERENCE,
    MATRIX,
    MATRIX_COLUMNS,
    META,
    PHASE_CALIBRATION,
    RANKS_DIR,
    SAMPLES_DIR,
    SAMPLING,
    SAMPLING_COLUMNS,
    sample_grid_name,
)


def read_phase_calibration(sweep_dir: Path | str) -> pd.DataFrame:
    """The sweep's phase_calibration.csv (empty without one); a file that does not parse or
    fit is a StoreDamaged error naming it."""
    frame = read_csv(Path(sweep_dir) / PHASE_CALIBRATION, check_phase_calibration)
    return frame.astype({"unit": str}) if not frame.empty else frame


@dataclass
class RunRecord:
    """One run folder as stored: its meta.json, epoch rows, where present the final model's
    inference cost, the gated layers' states and a generation run's metered sampling (empty
    when absent), its power trace, read lazily (``trace``), and its sample grids
    (``sample_grids``).

    ``damage`` says which file of a damaged run does not parse or fit its schema (its
    epochs are then empty; ``stored_meta`` is None when meta.json is the damaged file, and
    ``meta`` then raises StoreDamaged);
    ``stale`` marks a run whose meta.json says ``running`` while no
    live process holds it (it was killed): its status reads ``interrupted``."""

    path: Path
    stored_meta: RunMeta | None
    epochs: pd.DataFrame = field(default_factory=pd.DataFrame)
    inference: pd.DataFrame = field(default_factory=pd.DataFrame)
    gates: pd.DataFrame = field(default_factory=pd.DataFrame)
    sampling: pd.DataFrame = field(default_factory=pd.DataFrame)
    damage: str | None = None
    stale: bool = False
    ranks: pd.DataFrame = field(default_factory=pd.DataFrame)
    """A distributed run's per-rank epoch rows (``ranks/rank-<r>/epochs.csv``) with a
    ``rank`` column; empty for a run of one process."""

    @property
    def run_id(self) -> str:
        return self.path.name if self.stored_meta is None else self.stored_meta.run_id

    @property
    def meta(self) -> RunMeta:
        """The run's meta.json; StoreDamaged (naming why) when it does not parse or fit."""
        if self.stored_meta is None:
            raise StoreDamaged(self.damage or f"{self.path / META}: not read")
        return self.stored_meta

    def sample_grids(self) -> dict[int, Path]:
        """The run's sample grid files by epoch (from 0), in epoch order; empty when none."""
        folder = self.path / SAMPLES_DIR
        grids = {}
        for path in sorted(folder.glob("epoch-*.png")) if folder.is_dir() else []:
            number = path.stem.removeprefix("epoch-")
            if number.isdigit() and int(number) >= 1:
                grids[int(number) - 1] = path
        return dict(sorted(grids.items()))

    @property
    def trace(self) -> StoredTrace:
        """The power trace, read lazily (chunk by chunk, or the power.csv of older runs)."""
        return StoredTrace(self.path)

    @property
    def power(self) -> pd.DataFrame:
        """Every reading of the power trace at once (empty for a damaged run): for short
        runs; a report reads ``trace.overview()``."""
        return pd.DataFrame() if self.damage is not None else self.trace.read()

    @property
    def status(self) -> str:
        if self.damage is not None:
            return DAMAGED
        return "interrupted" if self.stale else self.meta.status

    @property
    def note(self) -> str | None:
        """Why the stored status is not the whole story (damage, a killed run, metering
        faults of a run that went on)."""
        if self.damage is not None:
            return self.damage
        if self.stale:
            return f"{self.path / META}: says running, but no live process holds the run"
        return "; ".join(self.meta.notes) or None


def _schema_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg'].lower()}"


def read_meta(run_dir: Path | str) -> RunMeta:
    """The run's meta.json as a ``RunMeta``, an older format read through
    :func:`.migrate.migrate_meta`; a file that does not parse or fit is a StoreDamaged error
    naming it."""
    path = Path(run_dir) / META
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (not a run folder)") from None
    except OSError as exc:
        raise StoreDamaged(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreDamaged(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise StoreDamaged(f"{path}: not a JSON object (got {type(raw).__name__})")
    try:
        return META_SCHEMA.validate_python(migrate_meta(raw))
    except UnknownFormat as exc:
        raise StoreDamaged(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise StoreDamaged(f"{path}: {_schema_problem(exc)}") from None


def _check_counts(meta: RunMeta, epochs: pd.DataFrame, run_dir: Path) -> None:
    """An ended run's meta.json counts the rows of its epochs.csv."""
    if meta.status != "running" and meta.epochs_done != len(epochs):
        raise StoreDamaged(
            f"{run_dir / EPOCHS}: holds {len(epochs)} epoch rows, but {META} says "
            f"epochs_done {meta.epochs_done}"
        )


def load_run(run_dir: Path | str) -> RunRecord:
    """Load one run folder; a damaged one is a record with ``damage`` set, never an error."""
    run_dir = Path(run_dir)
    try:
        meta = read_meta(run_dir)
    except StoreDamaged as exc:
        return RunRecord(run_dir, None, damage=str(exc))
    try:
        epochs = read_csv(run_dir / EPOCHS, check_epochs)
        StoredTrace(run_dir).check()
        inference = read_csv(run_dir / INFERENCE, check_inference)
        gates = read_csv(run_dir / GATES, check_gates)
        sampling = read_csv(run_dir / SAMPLING, check_sampling)
        _check_counts(meta, epochs, run_dir)
        ranks = read_rank_epochs(run_dir, len(epochs))
    except (StoreDamaged, PowerTraceDamaged) as exc:
        return RunRecord(run_dir, meta, damage=str(exc))
    stale = meta.status == "running" and live_holder(run_dir) is None
    return RunRecord(run_dir, meta, epochs, inference, gates, sampling, stale=stale, ranks=ranks)


def read_rank_epochs(run_dir: Path, epochs_done: int) -> pd.DataFrame:
    """Every rank's epoch rows of a distributed run, with a ``rank`` column, to the run's own
    ``epochs_done`` (a rank's row written before the run's is trained again on resume);
    empty without ranks. A rank file that does not fit epochs.csv's schema, or holds fewer
    rows than the run, is a StoreDamaged error naming it."""
    frames = []
    for folder in sorted((run_dir / RANKS_DIR).glob("rank-*")):
        if not folder.name.removeprefix("rank-").isdigit():
            continue
        path = folder / EPOCHS
        rows = read_csv(path, check_epochs)
        if len(rows) < epochs_done:
            raise StoreDamaged(f"{path}: holds {len(rows)} epoch rows, the run {epochs_done}")
        rank = int(folder.name.removeprefix("rank-"))
        frames.append(rows.iloc[:epochs_done].assign(rank=rank))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _identity(path: Path) -> tuple[int, int, int]:
    """What changes whenever a file is replaced or written: inode, size, modification time."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def read_estimates(sweep_dir: Path | str) -> dict[str, EstimateMeta]:
    """The recorded columns of the sweep's estimate.csv per run id (empty without one); a
    file that does not parse or fit is a StoreDamaged error naming it."""
    path = Path(sweep_dir) / ESTIMATE
    if path.is_file() and path.stat().st_size == 0:  # written whole or not at all: damage
        raise StoreDamaged(f"{path}: empty (0 bytes), not an estimate; remove it or run estimate")
    frame = read_csv(path, check_estimate)
    if frame.empty:
        return {}
    frame = frame.astype({"run_id": str})
    return {
        str(row["run_id"]): EstimateMeta(**{c: _plain(row[c]) for c in ESTIMATE_RECORDED})
        for row in frame.to_dict("records")
    }


def read_matrix(sweep_dir: Path | str) -> pd.DataFrame:
    """The sweep's planned runs (matrix.csv: ``MATRIX_COLUMNS``, in plan order); empty when
    the sweep has none. A file that does not parse or fit is a StoreDamaged error naming it."""
    frame = read_csv(Path(sweep_dir) / MATRIX, check_matrix)
    return frame.astype({"run_id": str}) if not frame.empty else frame


def write_matrix(sweep_dir: Path | str, matrix: pd.DataFrame) -> None:
    """Write the sweep's planned runs (every process of a sharded sweep writes the same)."""
    atomic_write_csv(Path(sweep_dir) / MATRIX, matrix[list(MATRIX_COLUMNS)])


def _plain(value: Any) -> Any:
    """A CSV cell as JSON: numbers as float, text as str, an empty cell as None."""
    if isinstance(value, str):
        return value
    return None if pd.isna(value) else float(value)


def is_run_dir(path: Path) -> bool:
    """True for a folder holding a meta.json."""
    return path.is_dir() and (path / META).is_file()


def load_sweep(sweep_dir: Path | str) -> list[RunRecord]:
    """Every run of a sweep folder (``runs/NAME``), ordered by folder name.

    ``sweep_dir`` may also be a single run folder. A folder that is missing or holds no runs
    is a UserError naming it.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir}: no such results folder")
    if is_run_dir(sweep_dir):
        return [load_run(sweep_dir)]
    runs = [load_run(p) for p in sorted(sweep_dir.iterdir()) if is_run_dir(p)]
    if not runs:
        raise UserError(f"{sweep_dir}: no runs found (expected <run-id>/meta.json folders)")
    return runs


class RunStore:
    """Writes one run's folder: meta.json, epochs.csv (rewritten per epoch), the power
    chunks (``power_writer``), inference.csv."""

    def __init__(self, run_dir: Path | str) -> None:
        self.path = Path(run_dir)
        self._written: tuple[tuple[int, int, int], pd.DataFrame, str] | None = None
        """epochs.csv as this store last wrote it: the file's identity, its rows, its text."""

    def write_meta(self, meta: RunMeta) -> None:
        atomic_write_json(self.path / META, meta.to_json())

    def read_meta(self) -> RunMeta:
        return read_meta(self.path)

    def read_epochs(self) -> pd.DataFrame:
        return read_csv(self.path / EPOCHS, check_epochs)

    def write_epochs(self, epochs: pd.DataFrame) -> None:
        self._write_epochs(epochs, csv_text(epochs))

    def _write_epochs(self, epochs: pd.DataFrame, text: str) -> None:
        path = atomic_write_text(self.path / EPOCHS, text)
        self._written = (_identity(path), epochs, text)

    def _stored_epochs(self) -> tuple[pd.DataFrame, str | None]:
        """The stored rows, and the file's text when this store wrote it last (the file is
        then not read again); read and checked when anything else may have written it."""
        if self._written is not None:
            identity, epochs, text = self._written
            try:
                if _identity(self.path / EPOCHS) == identity:
                    return epochs, text
            except FileNotFoundError:
                pass
        return self.read_epochs(), None

    def append_epoch(self, row: dict[str, Any]) -> pd.DataFrame:
        """Add one epoch row and rewrite epochs.csv atomically; returns all rows.

        The row's ``epoch`` must be the next one (the number of stored rows): a StoreConflict
        otherwise, so no epoch is ever stored twice. When this store wrote the file last, it
        is not read again and the new row's line is added to the text it wrote, so the cost
        of an epoch end hardly grows with the epochs stored."""
        stored, text = self._stored_epochs()
        if row["epoch"] != len(stored):
            raise StoreConflict(
                f"{self.path / EPOCHS}: holds {len(stored)} epoch rows, so epoch "
                f"{row['epoch']} cannot be added (does another process write this run?)"
            )
        new = pd.DataFrame([row])
        epochs = pd.concat([stored, new], ignore_index=True, sort=False)
        if text is not None and list(new.columns) == list(stored.columns):
            self._write_epochs(epochs, text + csv_text(new, header=False))
        else:
            self.write_epochs(epochs)
        return epochs

    def power_writer(self, epochs_kept: int) -> PowerWriter:
        """The writer of the run's power chunks, continuing after ``epochs_kept`` stored
        epochs (later chunks are removed: their epochs are trained again)."""
        return PowerWriter(self.path, epochs_kept)

    def read_blocks(self) -> pd.DataFrame:
        """blocks.csv, checked (a controlled comparison's blocks; empty without one)."""
        return read_csv(self.path / BLOCKS, check_blocks)

    def write_blocks(self, blocks: pd.DataFrame) -> None:
        atomic_write_csv(self.path / BLOCKS, blocks)

    def write_inference(self, inference: pd.DataFrame) -> None:
        atomic_write_csv(self.path / INFERENCE, inference)

    def write_sampling(self, row: dict[str, Any]) -> None:
        """Store one epoch's metered sampling in sampling.csv, replacing the rows of that
        epoch and later ones (left by an interrupted epoch that is trained again)."""
        rows = read_csv(self.path / SAMPLING, check_sampling)
        if not rows.empty:
            rows = rows[rows["epoch"] < row["epoch"]]
        new = pd.DataFrame([row], columns=list(SAMPLING_COLUMNS))
        atomic_write_csv(self.path / SAMPLING, new if rows.empty else pd.concat([rows, new]))

    def write_sample_grid(self, epoch: int, png: bytes) -> Path:
        """Store the sample grid of ``epoch`` (from 0) as samples/epoch-<n>.png."""
        (self.path / SAMPLES_DIR).mkdir(exist_ok=True)
        return atomic_write(
            self.path / SAMPLES_DIR / sample_grid_name(epoch), lambda f: f.write(png)
        )
