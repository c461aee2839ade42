"""The store's vocabulary, written once: file names, run statuses, phases, the setup label
and the per-source column names (``source_column``, ``parse_source_column``, from
:mod:`ssprop_energy.columns`; see docs/store.md for every file and column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd

from ..columns import ENERGY as ENERGY
from ..columns import ENERGY_PER_1000 as ENERGY_PER_1000
from ..columns import ENERGY_PER_UNIT as ENERGY_PER_UNIT
from ..columns import HEALTH_KINDS as HEALTH_KINDS
from ..columns import PHASES as PHASES
from ..columns import PROVENANCE as PROVENANCE
from ..columns import THROTTLE as THROTTLE
from ..columns import THROTTLE_REASONS as THROTTLE_REASONS
from ..columns import parse_source_column as parse_source_column
from ..columns import source_column as source_column
from ..columns import throttle_names as throttle_names

EpochIndex = TypeVar("EpochIndex", int, "pd.Series")

CONFIG = "config.yaml"
META = "meta.json"
EPOCHS = "epochs.csv"
POWER = "power.csv"
"""The power trace of runs stored before the chunks (read, never written)."""
POWER_DIR = "power"
"""The folder of a run's power chunks (store.power)."""
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
INFERENCE = "inference.csv"
GATES = "gates.csv"
SAMPLING = "sampling.csv"
SAMPLING_COLUMNS = (
    "epoch",
    "samples",
    "steps",
    "time_s",
    "energy_j",
    "provenance",
    "s_per_64",
    "j_per_64",
)
"""A generation run's metered sampling, one row per epoch that drew samples (docs/store.md)."""
BLOCKS = "blocks.csv"
BLOCKS_COLUMNS = (
    "epoch",
    "block",
    "arm",
    "order",
    "steps",
    "samples",
    "time_s",
    "energy_j",
    "provenance",
)
"""A controlled comparison's blocks, one row per arm of each block pair (docs/store.md);
beside them one energy and provenance column per source."""
BLOCKS_TEXT_COLUMNS = ("arm", PROVENANCE)
"""Columns (and column prefixes) of blocks.csv that hold text; the rest hold numbers."""
ARMS = ("run", "baseline")
"""The arms of a block pair: the run's own steps, and the baseline's shadow steps."""
SAMPLES_DIR = "samples"
"""A generation run's sample grids: ``samples/epoch-<n>.png``, n from 1 (docs/store.md)."""
FD_CLASSIFIER_DIR = "fd-classifier"
"""In a sweep folder: the cached classifiers of the ``fd_classifier`` score."""
LOCK = "run.lock"
ESTIMATE = "estimate.csv"
"""In a sweep folder: the predicted cost of every planned run (``ssprop-energy estimate``)."""
CALIBRATION = "calibration.csv"
"""In a sweep folder: the calibration the estimate was predicted from."""
RANKS_DIR = "ranks"
"""In a run folder of a distributed run: one folder per rank (``rank_folder``)."""
MATRIX = "matrix.csv"
"""In a sweep folder: every planned run of the config (``profile`` writes it), so a report
of a sweep spread over many processes can say which runs are still missing."""
MATRIX_COLUMNS = ("run_id", "method_label", "seed", "setup")
PHASE_CALIBRATION = "phase_calibration.csv"
"""In a sweep folder: the differential phase calibration (``energy.phase_calibration``)."""
PHASE_CALIBRATION_COLUMNS = (
    "unit",
    "keep",
    "phase",
    "time_s_per_step",
    "energy_j_per_step",
    "energy_j_per_step_low",
    "energy_j_per_step_high",
    "provenance",
    "windowed_energy_j_per_step",
    "windowed_provenance",
    "note",
)
"""Columns of phase_calibration.csv that ``profile`` reads back to reuse a calibration."""
PHASE_CALIBRATION_TEXT_COLUMNS = (
    "unit",
    "model",
    "task",
    "amp",
    "calibrated_on",
    "phase",
    "provenance",
    "windowed_provenance",
    "note",
)
"""Columns of phase_calibration.csv that hold text (or flags); the rest hold numbers."""
INFERENCE_COLUMNS = (
    "batch_size",
    "params",
    "flops_forward_per_sample",
    "latency_ms",
    "time_s_per_1000",
    "energy_j_per_1000",
    "provenance",
)
"""Columns every inference.csv has (beside one energy and provenance column per source)."""
CONTENTION_COLUMNS = ("cpu_s_own", "cpu_s_other", "cpu_load_other")
"""Columns of an epoch row on CPU contention: CPU seconds of the training process and its
children, CPU seconds of every other process on the machine, and that as a share of the
machine's CPU time (0 to 1)."""
GATES_COLUMNS = ("layer", "level", "channels", "kept", "open_fraction", "polarization")
ESTIMATE_RECORDED = (
    "time_s",
    "time_s_low",
    "time_s_high",
    "energy_j",
    "energy_j_low",
    "energy_j_high",
    "emissions_kg",
    "provenance",
    "estimated_at",
)
"""Columns of estimate.csv that ``profile`` records in a run's meta.json (``estimate``)."""
PREDICTED = ("time_s", "time_s_low", "time_s_high", "energy_j", "energy_j_low", "energy_j_high")
"""Recorded figures the report shows beside the actual ones, as ``predicted_<figure>``."""
ESTIMATE_TEXT_COLUMNS = ("run_id", "method_label", "setup", "provenance", "estimated_at", "note")
"""Columns (and column prefixes) of estimate.csv that hold text; the rest hold numbers."""

Status = Literal["pending", "running", "finished", "interrupted", "diverged", "failed"]
FINISHED: Status = "finished"
SETTLED: tuple[Status, ...] = ("finished", "diverged")
"""Statuses of a run that a sweep never trains again."""
ENDED: tuple[Status, ...] = ("finished", "diverged", "failed")
"""Statuses of a run that will not add epochs on its own."""
DAMAGED = "damaged"
"""What a reader calls a run whose files do not parse or fit their schema (never written)."""

FLOPS_OF_PHASE = {"forward": "flops_forward", "backward": "flops_backward", "eval": "flops_eval"}
"""The epoch column holding the analytic FLOPs of a phase (data and optimizer have none)."""


def epoch_number(index: EpochIndex) -> EpochIndex:
    """The epoch as people count it, from 1, for the store's 0-based epoch index: the
    terminal, the report's epochs.csv and the charts all show this number."""
    return index + 1


def rank_folder(run_dir: Path, rank: int) -> Path:
    """The folder of one rank's epoch rows and power trace in a distributed run's folder."""
    return run_dir / RANKS_DIR / f"rank-{rank:05d}"


NO_SETUP = "-"
"""The setup label of a run outside a sweep."""


def sample_grid_name(epoch: int) -> str:
    """The file of the sample grid after ``epoch`` (from 0), under SAMPLES_DIR."""
    return f"epoch-{epoch_number(epoch):03d}.png"


def setup_label(setup: dict[str, Any]) -> str:
    """``batch_size=64, lr=0.1`` (keys sorted); ``-`` for a run outside a sweep."""
    return ", ".join(f"{k}={setup[k]}" for k in sorted(setup)) or NO_SETUP
