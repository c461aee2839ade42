"""One rank's side of a distributed run: its meter options, and its epoch sink (rows, readings
and meter faults gathered to rank 0, which writes every rank's folder and the run's totals)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ...profilers import EnergyMeter, energy_meta
from ...store import DistributedMeta, RunMeta, SourceMeta, parse_entry
from ..config import EnergyConfig
from ..run.build import RunContext
from ..run.faults import MeterFault, meter_faults
from ..run.session import EpochOut
from .group import RankGroup
from .names import global_source, rename_sources, rename_trace
from .rows import RankFiles, total_row


def distributed_meta(
    group: RankGroup, per_rank: list[dict[str, Any]], batch: int
) -> dict[str, Any]:
    """meta.json's ``distributed`` entry (docs/store.md)."""
    r = group.ranks
    return {
        "backend": group.backend,
        "world_size": r.world,
        "nnodes": r.nodes,
        "nproc_per_node": r.local_world,
        "batch_size_per_rank": batch,
        "global_batch_size": batch * r.world,
        "ranks": per_rank,
    }


def rank_entry(group: RankGroup, sources: list[str]) -> dict[str, Any]:
    """This rank's entry in meta.json's ``distributed.ranks``."""
    r = group.ranks
    return {
        "rank": r.rank,
        "local_rank": r.local_rank,
        "node": r.node,
        "host": group.host,
        "sources": list(sources),
    }


def rank_meter_options(group: RankGroup, energy: EnergyConfig) -> EnergyConfig:
    """This rank's ``energy`` section: its own GPU; the node's CPU and CodeCarbon on local
    rank 0 only (CodeCarbon's lock file allows one tracker per machine)."""
    ranks = group.ranks
    gpus = [ranks.local_rank] if energy.gpus is not None else None
    if ranks.meters_node:
        return energy.model_copy(update={"gpus": gpus})
    return energy.model_copy(update={"gpus": gpus, "cpu": None, "codecarbon": False})


class RankSink:
    """A rank's epoch sink (``harness.run.session.EpochSink``), called at the same points on
    every rank: the meter's entries of meta.json, the resume point, and each epoch's end
    (rows, readings and meter faults gathered to rank 0, which writes every rank's folder
    and stores the run's totals row)."""

    part_s = float("inf")  # a distributed run's trace is stored per epoch

    def __init__(self, group: RankGroup, run_dir: Path, batch: int) -> None:
        self.group = group
        self.run_dir = run_dir
        self.batch = batch
        self.writes = group.is_main
        self.names: dict[str, str] = {}
        self.sources: list[str] = []
        self.nodes: list[int] = []
        self.files: RankFiles | None = None

    def device(self) -> torch.device | None:
        return self.group.device()

    def distribute(self, ctx: RunContext) -> None:
        self.group.distribute(ctx)

    def meter_options(self, energy: EnergyConfig) -> EnergyConfig:
        return rank_meter_options(self.group, energy)

    def resume(
        self, first: Callable[[], tuple[int, int]], load: Callable[[], int]
    ) -> tuple[int, int]:
        """Rank 0's first epoch to train on every rank (the others load the checkpoint);
        rank 0 keeps each rank's files to the epochs of the run's own."""
        start, kept = first() if self.group.is_main else (0, 0)
        if self.group.is_main:
            self.files = RankFiles(self.run_dir, self.group.ranks.world, kept)
        start = self.group.agree(start)
        if not self.group.is_main and start > 0:
            load()
        return start, kept

    def start(self, meter: EnergyMeter, meta: RunMeta) -> None:
        """Gather every rank's sources into meta.json's ``energy``, ``environment`` and
        ``distributed`` (on rank 0)."""
        own = [s.name for s in meter.sources]
        self.names = {name: global_source(name, self.group.ranks) for name in own}
        energy = energy_meta(meter)
        mine: dict[str, Any] = {
            "sources": {self.names[n]: v for n, v in energy["sources"].items()},
            "idle_power_w": {self.names[n]: v for n, v in energy["idle_power_w"].items()},
            "gpus": meter.hardware.gpu_models,
            "rank": rank_entry(self.group, [self.names[n] for n in own]),
        }
        gathered = self.group.gather(mine)
        if gathered is None:
            return
        self.sources = [s for g in gathered for s in g["sources"]]
        self.nodes = [g["rank"]["node"] for g in gathered]
        meta.energy.sources = {
            k: SourceMeta(**v) for g in gathered for k, v in g["sources"].items()
        }
        meta.energy.idle_power_w = {k: v for g in gathered for k, v in g["idle_power_w"].items()}
        meta.environment.gpus = [gpu for g in gathered for gpu in g["gpus"]]
        entry = distributed_meta(self.group, [g["rank"] for g in gathered], self.batch)
        meta.distributed = parse_entry(DistributedMeta, entry)

    def end_epoch(
        self, row: dict[str, Any], meter: EnergyMeter | None, epoch: int
    ) -> EpochOut | None:
        """Gather the epoch; on rank 0 write every rank's row and readings, and return the
        run's totals row (``rows.total_row``), all ranks' readings and faults."""
        assert meter is not None  # a rank's meter is started before its first epoch
        faults = [
            MeterFault(self.names.get(f.source, f.source), f.message, f.count)
            for f in meter_faults(meter)
        ]
        trace = rename_trace(meter.take_trace(), self.names)
        gathered = self.group.gather((rename_sources(row, self.names), trace, faults))
        if gathered is None or self.files is None:
            return None
        rows = [g[0] for g in gathered]
        traces = [g[1] for g in gathered]
        self.files.write(rows, traces, epoch)
        readings = pd.concat([t for t in traces if not t.empty] or [traces[0]], ignore_index=True)
        return (
            total_row(rows, self.sources, self.nodes),
            readings,
            [f for g in gathered for f in g[2]],
        )

    def agree(self, stop: bool) -> bool:
        return self.group.agree(stop)
