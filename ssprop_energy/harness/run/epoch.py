"""The epoch accumulator: everything one epoch adds up, turned into its epochs.csv row."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...profilers import Measurement
from ...provenance import UNAVAILABLE, combine
from ...store import ENERGY, PHASES, PROVENANCE, source_column


def _total(values: list[float]) -> float:
    """The sum over the sources that have a figure; NaN (unknown, not 0 J) when none has."""
    return sum(values) if values else math.nan


def energy_columns(phases: dict[str, Measurement | None], sources: list[str]) -> dict[str, Any]:
    """Seconds per phase and joules per phase and source, with each source's provenance.

    A source's epoch figure is the sum of its phases, labelled by :func:`combine`; a phase's
    or the epoch's total sums the sources that have a figure (NaN when none has)."""
    row: dict[str, Any] = {}
    per_source: dict[str, float] = dict.fromkeys(sources, 0.0)
    labels: dict[str, list[str]] = {s: [] for s in sources}
    for phase in PHASES:
        m = phases.get(phase)
        row[f"time_s_{phase}"] = m.time_s if m else 0.0
        known = []
        for s in sources:
            value = m.energy_j.get(s) if m else 0.0
            if m is not None:
                labels[s].append(m.provenance.get(s, UNAVAILABLE))
            row[source_column(ENERGY, s, phase)] = math.nan if value is None else value
            if value is None:
                per_source[s] = math.nan
            else:
                per_source[s] += value
                known.append(value)
        row[f"energy_j_{phase}"] = _total(known)
    for s in sources:
        row[source_column(ENERGY, s)] = per_source[s]
        row[source_column(PROVENANCE, s)] = combine(labels[s])
    row["energy_j"] = _total([v for v in per_source.values() if not math.isnan(v)])
    return row


@dataclass
class EpochAccumulator:
    """Adds up one epoch's steps: phase windows, keep, loss, training metrics and FLOPs."""

    epoch: int
    phases: dict[str, Measurement | None] = field(default_factory=lambda: dict.fromkeys(PHASES))
    keeps: list[float] = field(default_factory=list)
    loss_sum: float = 0.0
    metric_sums: dict[str, float] = field(default_factory=dict)
    seen: int = 0
    flops_forward: int = 0
    flops_backward: int = 0
    flops_backward_dense: int = 0

    def add_window(self, phase: str, m: Measurement) -> None:
        current = self.phases[phase]
        self.phases[phase] = m if current is None else current + m

    def add_step(
        self,
        keep: float,
        samples: int,
        loss: float,
        metrics: dict[str, float],
        flops: tuple[int, int],
        dense_backward: int,
    ) -> None:
        self.keeps.append(keep)
        self.seen += samples
        self.loss_sum += loss * samples
        for name, value in metrics.items():
            self.metric_sums[name] = self.metric_sums.get(name, 0.0) + float(value)
        self.flops_forward += flops[0]
        self.flops_backward += flops[1]
        self.flops_backward_dense += dense_backward

    def mean_power_w(self) -> float | None:
        """Mean power (W) of the epoch's windows so far; None while a source has no figure."""
        windows = [m for m in self.phases.values() if m is not None]
        joules = [m.total_energy_j for m in windows]
        seconds = sum(m.time_s for m in windows)
        if not seconds or any(j is None for j in joules):
            return None
        return sum(j for j in joules if j is not None) / seconds

    def row(
        self,
        evaluation: dict[str, float],
        time_s: float,
        sources: list[str],
        emissions_kg: Callable[[float], float],
        flops_eval: int,
    ) -> dict[str, Any]:
        """The epoch's store row (without ``run_id``)."""
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "keep": sum(self.keeps) / len(self.keeps),
            "train_loss": self.loss_sum / self.seen,
            **{name: value / self.seen for name, value in self.metric_sums.items()},
            **evaluation,
            "steps": len(self.keeps),
            "time_s": time_s,
        }
        row.update(energy_columns(self.phases, sources))
        row["emissions_kg"] = emissions_kg(row["energy_j"])
        row.update(
            flops_forward=self.flops_forward,
            flops_backward=self.flops_backward,
            flops_backward_dense=self.flops_backward_dense,
            flops_eval=flops_eval,
            flops_total=self.flops_forward + self.flops_backward + flops_eval,
        )
        return row


def without_sources(
    row: dict[str, Any], lost: set[str], sources: list[str], emissions_kg: Callable[[float], float]
) -> dict[str, Any]:
    """``row`` with no figure from the ``lost`` sources (``unavailable``: a source that
    failed during the epoch), its totals summed again over the sources left."""
    lost = lost & set(sources)
    if not lost:
        return row
    out = dict(row)
    for s in lost:
        out[f"provenance_{s}"] = UNAVAILABLE
        out[f"energy_j_{s}"] = math.nan
        for phase in PHASES:
            out[f"energy_j_{phase}_{s}"] = math.nan
    for phase in PHASES:
        out[f"energy_j_{phase}"] = _known([out[f"energy_j_{phase}_{s}"] for s in sources])
    out["energy_j"] = _known([out[f"energy_j_{s}"] for s in sources])
    out["emissions_kg"] = emissions_kg(out["energy_j"])
    return out


def _known(values: list[float]) -> float:
    return _total([v for v in values if not math.isnan(v)])
