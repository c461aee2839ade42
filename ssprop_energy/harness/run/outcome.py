"""What a run tells its caller: a line after each step, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .session import RunSession


@dataclass
class StepInfo:
    """What the progress display shows after each step."""

    epoch: int
    step: int
    steps: int
    keep: float
    loss: float
    watts: float | None  # mean power of the epoch's windows so far; None: no figure


@dataclass
class RunOutcome:
    """How a run ended. ``primary``: the last value of the task's ``primary_metric`` (the
    accuracy for classification), None without one."""

    run_id: str
    status: str
    epochs_done: int
    accuracy: float | None
    energy_j: float | None
    time_s: float
    error: str | None = None
    primary_metric: str = "accuracy"
    primary: float | None = None

    @classmethod
    def of(
        cls, run_id: str, session: RunSession, epochs: pd.DataFrame, time_s: float
    ) -> RunOutcome:
        """The outcome of the run ``session`` ended, from its stored ``epochs``."""
        last = epochs.iloc[-1] if not epochs.empty else None
        metric = session.meta.primary_metric
        return cls(
            run_id,
            session.status,
            len(epochs),
            _last(last, "accuracy"),
            _run_energy(epochs),
            time_s,
            session.error,
            metric,
            _last(last, metric),
        )


def _last(row: pd.Series | None, column: str) -> float | None:
    """The last epoch's figure in ``column``; None without one."""
    return None if row is None or column not in row else float(row[column])


def _run_energy(epochs: pd.DataFrame) -> float | None:
    """The run's joules over its stored epochs; None when an epoch has no figure."""
    if epochs.empty or epochs["energy_j"].isna().any():
        return None
    return float(epochs["energy_j"].sum())
