"""A run's meta.json as typed records: ``RunMeta`` and one record per nested entry
(docs/store.md#metajson). ``read_meta`` hands out a ``RunMeta``; writers fill one and the
store writes ``RunMeta.to_json()``, with the store ``format`` it follows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter

from .schema import Status

FORMAT = 2
"""The layout of meta.json that ``RunMeta`` writes; a meta.json without ``format`` is
format 1 and reads through :mod:`.migrate`."""

T = TypeVar("T")


@dataclass
class SourceMeta:
    """One energy source of the run: its provenance, why it has no figure (``reason``, only
    for ``unavailable``) and which device it is."""

    provenance: str
    reason: str | None = None
    device: str | None = None


@dataclass
class EnergyMeta:
    """meta.json's ``energy``: the sources by name, their idle power (W), the country and
    its carbon intensity; empty when the run was never metered."""

    sources: dict[str, SourceMeta] = field(default_factory=dict)
    idle_power_w: dict[str, float] = field(default_factory=dict)
    country: str | None = None
    carbon_intensity_g_per_kwh: float | None = None


@dataclass
class EnvironmentMeta:
    """meta.json's ``environment``: what the run ran on."""

    python: str | None = None
    torch: str | None = None
    cuda: str | None = None
    platform: str | None = None
    cpu: str | None = None
    gpus: list[str] = field(default_factory=list)
    driver: str | None = None


@dataclass
class EstimateMeta:
    """meta.json's ``estimate``: the run's row of the sweep's estimate.csv
    (``ESTIMATE_RECORDED``); numbers are None where the cell was empty."""

    time_s: float | None = None
    time_s_low: float | None = None
    time_s_high: float | None = None
    energy_j: float | None = None
    energy_j_low: float | None = None
    energy_j_high: float | None = None
    emissions_kg: float | None = None
    provenance: str | None = None
    estimated_at: str | None = None


@dataclass
class RankMeta:
    """One rank of a distributed run (``distributed.ranks``)."""

    rank: int
    local_rank: int
    node: int
    host: str
    sources: list[str] = field(default_factory=list)


@dataclass
class DistributedMeta:
    """meta.json's ``distributed``: the ranks of a run trained on many processes."""

    backend: str
    world_size: int
    nnodes: int
    nproc_per_node: int
    batch_size_per_rank: int
    global_batch_size: int
    ranks: list[RankMeta] = field(default_factory=list)


@dataclass
class PhasePriceMeta:
    """The calibrated price of one phase at one keep (``phase_calibration.prices``):
    joules per step, None within noise or without a figure."""

    keep: float
    phase: str
    unit: str
    energy_j_per_step: float | None
    provenance: str
    note: str = ""


@dataclass
class PhaseCalibrationMeta:
    """meta.json's ``phase_calibration``: the prices of the keeps the run's schedule uses,
    and its planned steps as ``(epoch, keep, steps)``."""

    prices: list[PhasePriceMeta] = field(default_factory=list)
    steps: list[tuple[int, float, int]] = field(default_factory=list)


@dataclass
class ComparisonMeta:
    """meta.json's ``comparison``: a controlled comparison's state (docs/controlled.md).
    ``time_log_ratios`` and ``energy_log_ratios``: one natural log of run / baseline per
    block pair, per step (None where a pair has no energy figure); ``stop``: ``precision``
    (the interval reached the target), ``budget`` (the run ended with the budget as the
    limit) or ``stopped: <why>``; ``extra_time_s``: the shadow's seconds, ``train_time_s``:
    the run's own seconds so far."""

    baseline_run: str
    baseline_method: str
    design: str
    block_steps: int
    precision: float
    budget: float
    pairs: int = 0
    stop: str = "budget"
    extra_time_s: float = 0.0
    train_time_s: float = 0.0
    time_log_ratios: list[float] = field(default_factory=list)
    energy_log_ratios: list[float | None] = field(default_factory=list)


@dataclass
class RunMeta:
    """A run's meta.json (docs/store.md), typed. ``error`` is one line for ``failed`` and
    ``diverged`` runs. ``mean_keep_planned`` is None and ``flops_per_step`` empty for a run
    that failed before its model was built. ``estimate``, ``phase_calibration``,
    ``distributed`` and ``comparison`` are None for a run without them. ``notes``: what
    went wrong while metering a run that went on (a recorded run's metering faults), one
    line each. ``method_notes``: what the method says about how it went (``Method.notes``:
    gates far from their target at pruning), one line each. ``format``: the layout of the
    file (``FORMAT``)."""

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
    energy: EnergyMeta = field(default_factory=EnergyMeta)
    environment: EnvironmentMeta = field(default_factory=EnvironmentMeta)
    error: str | None = None
    finished_at: str | None = None
    estimate: EstimateMeta | None = None
    notes: list[str] = field(default_factory=list)
    method_notes: list[str] = field(default_factory=list)
    distributed: DistributedMeta | None = None
    phase_calibration: PhaseCalibrationMeta | None = None
    comparison: ComparisonMeta | None = None
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


META_SCHEMA = TypeAdapter(RunMeta)
"""Validates a parsed meta.json of the current format into a ``RunMeta``. Built here,
where the annotations' names (``Status``) resolve: pydantic before 2.6 resolves them in the
caller's module."""

_ENTRIES: dict[Any, TypeAdapter[Any]] = {
    kind: TypeAdapter(kind)
    for kind in (
        EnergyMeta,
        EnvironmentMeta,
        EstimateMeta,
        DistributedMeta,
        PhaseCalibrationMeta,
        ComparisonMeta,
    )
} | {RunMeta: META_SCHEMA}


def parse_entry(kind: type[T], raw: Any) -> T:
    """One nested entry of meta.json (``EnergyMeta``, ``EnvironmentMeta``, ...), or a whole
    ``RunMeta``, from the JSON types a writer built it as; a pydantic ValidationError when it
    does not fit."""
    adapter = _ENTRIES.get(kind) or TypeAdapter(kind)
    return adapter.validate_python(raw)  # type: ignore[no-any-return]
