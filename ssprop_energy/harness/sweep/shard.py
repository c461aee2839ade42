"""A sweep spread over many processes: ``--shard K/N`` (or a SLURM job array) trains only the
K-th of N deterministic parts of the run matrix.

The parts are built from the planned matrix alone, so every process of a sweep computes the
same split: a run and the runs that start from its final weights (``init_from``) form one
group, and the groups go to the parts in turn, in plan order. Which process trains a run is
still decided by the run's lock (``store.RunLock``), so parts that overlap (a rerun with
another N) never train a run twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ...errors import UserError
from ...store import MATRIX_COLUMNS, setup_label
from ..runs import RunSpec

SLURM_TASK_ID = "SLURM_ARRAY_TASK_ID"
SLURM_TASK_COUNT = "SLURM_ARRAY_TASK_COUNT"
SLURM_TASK_MIN = "SLURM_ARRAY_TASK_MIN"


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (from 1) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, name: str = "--shard") -> Shard:
    """``K/N`` with 1 <= K <= N; anything else is a UserError naming ``name``."""
    head, sep, tail = text.strip().partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index = count = 0
    if not sep or count < 1 or not 1 <= index <= count:
        raise UserError(f"{name}: expected K/N with 1 <= K <= N (e.g. 1/4), got {text!r}")
    return Shard(index, count)


def _env_int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = environ.get(name)
    if value is None and default is not None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise UserError(f"{name}: expected a whole number, got {value!r}") from None


def shard_from_env(environ: Mapping[str, str]) -> Shard | None:
    """The shard of a SLURM array task: ``SLURM_ARRAY_TASK_ID`` counted from
    ``SLURM_ARRAY_TASK_MIN`` (0 when unset) of ``SLURM_ARRAY_TASK_COUNT`` tasks; None outside
    a job array."""
    if SLURM_TASK_COUNT not in environ:
        return None
    count = _env_int(environ, SLURM_TASK_COUNT)
    task = _env_int(environ, SLURM_TASK_ID)
    first = _env_int(environ, SLURM_TASK_MIN, 0)
    source = f"{SLURM_TASK_ID}={task} ({SLURM_TASK_MIN}={first}, {SLURM_TASK_COUNT}={count})"
    return parse_shard(f"{task - first + 1}/{count}", source)


def resolve_shard(option: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """``--shard`` when given, else the SLURM array task's shard, else None (all runs)."""
    if option is not None:
        return parse_shard(option)
    return shard_from_env(os.environ if environ is None else environ)


def _groups(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The runs in groups that must share a process: a run and those starting from its
    weights, in plan order (a source always precedes the runs that start from it)."""
    root: dict[str, str] = {}
    groups: dict[str, list[RunSpec]] = {}
    for spec in runs:
        key = root.get(spec.init_run, spec.run_id) if spec.init_run else spec.run_id
        root[spec.run_id] = key
        groups.setdefault(key, []).append(spec)
    return list(groups.values())


def shard_runs(runs: list[RunSpec], shard: Shard | None) -> list[RunSpec]:
    """The runs of ``shard`` in plan order (all of them for None): group ``g`` of the plan
    goes to part ``g mod N + 1``."""
    if shard is None:
        return runs
    chosen = {
        spec.run_id
        for g, group in enumerate(_groups(runs))
        if g % shard.count == shard.index - 1
        for spec in group
    }
    return [spec for spec in runs if spec.run_id in chosen]


def matrix_table(runs: list[RunSpec]) -> pd.DataFrame:
    """The planned runs as the store's matrix.csv records them."""
    rows = [(s.run_id, s.label, s.seed, setup_label(s.setup)) for s in runs]
    return pd.DataFrame(rows, columns=list(MATRIX_COLUMNS))
