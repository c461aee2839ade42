"""Reading and writing run folders of the results store (docs/store.md).

Every write goes through the atomic writer; errors name the file and say what went wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from .atomic import atomic_write_csv, atomic_write_json
from .schema import EPOCHS, GATES, INFERENCE, META, POWER, RunMeta


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV file ({exc})") from None


@dataclass
class RunRecord:
    """One run folder as stored: its meta.json, epoch rows, power trace, and where present
    the final model's inference cost and the gated layers' states (empty when absent)."""

    path: Path
    meta: dict[str, Any]
    epochs: pd.DataFrame = field(default_factory=pd.DataFrame)
    power: pd.DataFrame = field(default_factory=pd.DataFrame)
    inference: pd.DataFrame = field(default_factory=pd.DataFrame)
    gates: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "unknown"))


def read_meta(run_dir: Path | str) -> dict[str, Any]:
    """The run's meta.json; a broken file is a UserError naming it."""
    path = Path(run_dir) / META
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (not a run folder)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def load_run(run_dir: Path | str) -> RunRecord:
    """Load one run folder."""
    run_dir = Path(run_dir)
    return RunRecord(
        path=run_dir,
        meta=read_meta(run_dir),
        epochs=_read_csv(run_dir / EPOCHS),
        power=_read_csv(run_dir / POWER),
        inference=_read_csv(run_dir / INFERENCE),
        gates=_read_csv(run_dir / GATES),
    )


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
    """Writes one run's folder: meta.json, epochs.csv (rewritten per epoch), power.csv,
    inference.csv."""

    def __init__(self, run_dir: Path | str) -> None:
        self.path = Path(run_dir)

    def write_meta(self, meta: RunMeta | dict[str, Any]) -> None:
        atomic_write_json(self.path / META, meta.to_json() if isinstance(meta, RunMeta) else meta)

    def read_meta(self) -> dict[str, Any]:
        return read_meta(self.path)

    def read_epochs(self) -> pd.DataFrame:
        return _read_csv(self.path / EPOCHS)

    def write_epochs(self, epochs: pd.DataFrame) -> None:
        atomic_write_csv(self.path / EPOCHS, epochs)

    def append_epoch(self, row: dict[str, Any]) -> pd.DataFrame:
        """Add one epoch row and rewrite epochs.csv atomically; returns all rows."""
        epochs = pd.concat([self.read_epochs(), pd.DataFrame([row])], ignore_index=True, sort=False)
        self.write_epochs(epochs)
        return epochs

    def write_power(self, trace: pd.DataFrame) -> None:
        atomic_write_csv(self.path / POWER, trace)

    def write_inference(self, inference: pd.DataFrame) -> None:
        atomic_write_csv(self.path / INFERENCE, inference)
