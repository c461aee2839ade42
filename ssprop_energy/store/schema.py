"""The store's vocabulary, written once: file names, run statuses, phases, the setup label
and the typed meta.json record (see docs/store.md for every file and column)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter

CONFIG = "config.yaml"
META = "meta.json"
EPOCHS = "epochs.csv"
POWER = "power.csv"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
INFERENCE = "inference.csv"
GATES = "gates.csv"
LOCK = "run.lock"
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
GATES_COLUMNS = ("layer", "level", "channels", "kept", "open_fraction", "polarization")

Status = Literal["pending", "running", "finished", "interrupted", "diverged", "failed"]
FINISHED: Status = "finished"
SETTLED: tuple[Status, ...] = ("finished", "diverged")
"""Statuses of a run that a sweep never trains again."""
ENDED: tuple[Status, ...] = ("finished", "diverged", "failed")
"""Statuses of a run that will not add epochs on its own."""
DAMAGED = "damaged"
"""What a reader calls a run whose files do not parse or fit their schema (never written)."""

PHASES = ("data", "forward", "backward", "optimizer", "eval")
"""The metered phases of a training step (the first four) and of validation."""
FLOPS_OF_PHASE = {"forward": "flops_forward", "backward": "flops_backward", "eval": "flops_eval"}
"""The epoch column holding the analytic FLOPs of a phase (data and optimizer have none)."""

NO_SETUP = "-"
"""The setup label of a run outside a sweep."""


def setup_label(setup: dict[str, Any]) -> str:
    """``batch_size=64, lr=0.1`` (keys sorted); ``-`` for a run outside a sweep."""
    return ", ".join(f"{k}={setup[k]}" for k in sorted(setup)) or NO_SETUP


@dataclass
class RunMeta:
    """A run's meta.json (docs/store.md), typed. ``energy`` and ``environment`` are the
    profilers' records; ``error`` is one line for ``failed`` and ``diverged`` runs.
    ``mean_keep_planned`` is None and ``flops_per_step`` empty for a run that failed before
    its model was built. ``notes``: what went wrong while metering a run that went on (a
    recorded run's metering faults), one line each."""

    run_id: str
    sweep: str
    method: str
    method_label: str
    method_params: dict[str, Any]
    task: str
    primary_metric: str
    higher_is_better: bool
    seed: int
    setup: dict[str, Any]
    run_config: dict[str, Any]
    epochs_planned: int
    mean_keep_planned: float | None
    flops_per_step: dict[str, int]
    started_at: str
    status: Status = "running"
    target_accuracy: float | None = None
    target_status: Literal["reached", "not_reached"] | None = None
    stopped_at_target: bool = False
    epochs_done: int = 0
    energy: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    finished_at: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


META_SCHEMA = TypeAdapter(RunMeta)
"""Validates a parsed meta.json against ``RunMeta``. Built here, where the annotations'
names (``Status``) resolve: pydantic before 2.6 resolves them in the caller's module."""
