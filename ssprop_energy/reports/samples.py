"""The generation runs' part of the report: each run's last sample grid, inline as a base64
PNG, beside its final denoising loss, last score and sampling cost."""

from __future__ import annotations

import base64
import math

import pandas as pd

from ..store import RunRecord
from .runs import epoch_numbers

SCORES = ("val_denoise_loss", "fd_classifier")
COSTS = ("s_per_64", "j_per_64", "provenance")


def _last_known(epochs: pd.DataFrame, column: str) -> float:
    values = epoch_numbers(epochs, column).dropna()
    return float(values.iloc[-1]) if len(values) else math.nan


def final_grid(record: RunRecord, run: str) -> pd.DataFrame:
    """One row: the run's last sample grid (epoch from 0, PNG as base64), its final
    denoising loss, last score and last sampling cost; empty when the run saved no grid."""
    grids = record.sample_grids()
    if not grids:
        return pd.DataFrame()
    epoch, path = list(grids.items())[-1]
    row: dict[str, object] = {
        "run": run,
        "epoch": epoch,
        "png_base64": base64.b64encode(path.read_bytes()).decode("ascii"),
    }
    row.update({column: _last_known(record.epochs, column) for column in SCORES})
    last = record.sampling.iloc[-1] if not record.sampling.empty else {}
    row.update({column: last.get(column, math.nan) for column in COSTS})
    return pd.DataFrame([row])
