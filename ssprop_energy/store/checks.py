"""The schema checks of the store's CSV files, and the one reader that applies them: a file
that does not parse or does not fit is a StoreDamaged error naming it (docs/store.md)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from .atomic import restore_csv
from .schema import (
    ARMS,
    BLOCKS_COLUMNS,
    BLOCKS_TEXT_COLUMNS,
    ESTIMATE_RECORDED,
    ESTIMATE_TEXT_COLUMNS,
    GATES_COLUMNS,
    INFERENCE_COLUMNS,
    MATRIX_COLUMNS,
    PHASE_CALIBRATION_COLUMNS,
    PHASE_CALIBRATION_TEXT_COLUMNS,
    PROVENANCE,
    SAMPLING_COLUMNS,
    THROTTLE,
)

EPOCH_TEXT_COLUMNS = ("run_id", f"{PROVENANCE}_")
"""Columns of epochs.csv that hold text (the rest hold numbers, empty where unknown)."""
INFERENCE_TEXT_COLUMNS = ("provenance",)
GATES_TEXT_COLUMNS = ("layer", "level")
SAMPLING_TEXT_COLUMNS = ("provenance",)


class StoreDamaged(UserError):
    """A store file that does not parse or does not fit its schema."""


class StoreConflict(UserError):
    """A write that would double or skip a stored epoch (another process writes the run)."""


def _numeric(frame: pd.DataFrame, path: Path, text: tuple[str, ...]) -> None:
    for column in frame.columns:
        if column.startswith(text):
            continue
        try:
            pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            raise StoreDamaged(f"{path}: column {column!r} holds text, not numbers") from None


def _required(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StoreDamaged(f"{path}: no column {missing[0]!r}")


def check_epochs(frame: pd.DataFrame, path: Path) -> None:
    """epochs.csv's schema: run_id and epoch columns, numbers but for run_id and provenance,
    and epochs 0, 1, ..., N-1 in order, each once; a GPU's ``throttle_reasons_<source>``
    (optional, like every GPU state column) holds non-negative integers."""
    _required(frame, path, ("run_id", "epoch"))
    _numeric(frame, path, EPOCH_TEXT_COLUMNS)
    for column in (c for c in frame.columns if c.startswith(f"{THROTTLE}_")):
        masks = pd.to_numeric(frame[column]).dropna()
        if ((masks < 0) | (masks != masks.round())).any():
            raise StoreDamaged(
                f"{path}: column {column!r} holds a reason mask that is not a non-negative integer"
            )
    check_epoch_values(frame, path)
    epochs = pd.to_numeric(frame["epoch"]).tolist()
    for row, epoch in enumerate(epochs):
        if epoch != row:
            seen = "appears twice" if epoch in epochs[:row] else "is out of order"
            raise StoreDamaged(f"{path}: row {row + 1}: epoch {epoch} {seen}")


# -- epochs.csv: required figures and their ranges ----------------------------------------

EPOCH_REQUIRED = ("time_s", "energy_j", "flops_total")
"""Columns every epoch row has (the trainer, the ranks' totals and RunRecorder all write
them; empty where unknown, e.g. energy_j without an energy source)."""
EPOCH_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "train_accuracy": (0.0, 1.0),
    "time_s": (0.0, math.inf),
    "energy_j": (0.0, math.inf),
    "emissions_kg": (0.0, math.inf),
    "flops_forward": (0.0, math.inf),
    "flops_backward": (0.0, math.inf),
    "flops_backward_dense": (0.0, math.inf),
    "flops_eval": (0.0, math.inf),
    "flops_total": (0.0, math.inf),
}
"""The closed range of each figure of epochs.csv that has one; values must be finite
(an empty cell is an unknown figure, and allowed)."""


def check_epoch_values(frame: pd.DataFrame, path: Path) -> None:
    """epochs.csv's required figures (``EPOCH_REQUIRED``) and ranges (``EPOCH_RANGES``): a
    StoreDamaged line naming the file, the row, the column and the value."""
    _required(frame, path, EPOCH_REQUIRED)
    for column, (low, high) in EPOCH_RANGES.items():
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column])
        bad = values.notna() & ~(values.between(low, high) & np.isfinite(values))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            value = float(values.iloc[row])
            what = "is not finite" if math.isinf(value) else f"is outside [{low:g}, {high:g}]"
            raise StoreDamaged(f"{path}: row {row + 1}: {column} {value:g} {what}")


def check_inference(frame: pd.DataFrame, path: Path) -> None:
    """inference.csv's schema: its columns, numbers but for provenance labels."""
    _required(frame, path, INFERENCE_COLUMNS)
    _numeric(frame, path, INFERENCE_TEXT_COLUMNS)


def check_gates(frame: pd.DataFrame, path: Path) -> None:
    """gates.csv's schema: its columns, numbers but for layer and level."""
    _required(frame, path, GATES_COLUMNS)
    _numeric(frame, path, GATES_TEXT_COLUMNS)


def check_sampling(frame: pd.DataFrame, path: Path) -> None:
    """sampling.csv's schema: its columns, numbers but for the provenance label."""
    _required(frame, path, SAMPLING_COLUMNS)
    _numeric(frame, path, SAMPLING_TEXT_COLUMNS)


def check_blocks(frame: pd.DataFrame, path: Path) -> None:
    """blocks.csv's schema: its columns, numbers but for the text columns, arms ``run`` and
    ``baseline`` only, each block's arm once."""
    _required(frame, path, BLOCKS_COLUMNS)
    _numeric(frame, path, BLOCKS_TEXT_COLUMNS)
    unknown = frame.loc[~frame["arm"].isin(ARMS), "arm"]
    if len(unknown):
        raise StoreDamaged(f"{path}: arm {unknown.iloc[0]!r} is not one of {', '.join(ARMS)}")
    twice = frame[frame.duplicated(["block", "arm"])]
    if len(twice):
        raise StoreDamaged(f"{path}: block {twice.iloc[0]['block']} appears twice")


def check_estimate(frame: pd.DataFrame, path: Path) -> None:
    """estimate.csv's schema: run_id and the recorded columns, numbers but for the text
    columns, each run once."""
    _required(frame, path, ("run_id", *ESTIMATE_RECORDED))
    _numeric(frame, path, ESTIMATE_TEXT_COLUMNS)
    twice = frame["run_id"][frame["run_id"].duplicated()]
    if len(twice):
        raise StoreDamaged(f"{path}: run {twice.iloc[0]} appears twice")


def check_matrix(frame: pd.DataFrame, path: Path) -> None:
    """matrix.csv's schema: its columns, each run once."""
    _required(frame, path, MATRIX_COLUMNS)
    twice = frame["run_id"][frame["run_id"].duplicated()]
    if len(twice):
        raise StoreDamaged(f"{path}: run {twice.iloc[0]} appears twice")


def check_phase_calibration(frame: pd.DataFrame, path: Path) -> None:
    """phase_calibration.csv's schema: the columns read back, numbers but for the text
    columns, each unit's phase once."""
    _required(frame, path, PHASE_CALIBRATION_COLUMNS)
    _numeric(frame, path, PHASE_CALIBRATION_TEXT_COLUMNS)
    twice = frame[frame.duplicated(["unit", "phase"])]
    if len(twice):
        unit, phase = twice.iloc[0]["unit"], twice.iloc[0]["phase"]
        raise StoreDamaged(f"{path}: unit {unit} phase {phase} appears twice")


def read_csv(path: Path, check: Callable[[pd.DataFrame, Path], None]) -> pd.DataFrame:
    """A store CSV file, checked; a missing or empty file is an empty frame."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return pd.DataFrame()
    except OSError as exc:
        raise StoreDamaged(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        return pd.DataFrame()
    if not data.endswith(b"\n"):
        raise StoreDamaged(f"{path}: the last line is cut off (the file is truncated)")
    try:
        frame = restore_csv(pd.read_csv(io.BytesIO(data)))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise StoreDamaged(f"{path}: not a readable CSV file ({first})") from None
    if not frame.empty:
        check(frame, path)
    return frame
