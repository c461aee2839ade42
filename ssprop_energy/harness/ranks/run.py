"""One run's distributed side, called at the same points on every rank (meta.json's entries,
resume, the end of each epoch)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ...profilers import EnergyMeter, energy_meta
from ...store import DistributedMeta, RunMeta, SourceMeta, parse_entry
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


class RankRun:
    """One run's distributed side, called at the same points on every rank: the meter's
    entries of meta.json, the resume point, and each epoch's end (rows and readings gathered
    to rank 0, which writes every rank's folder and returns the run's totals row)."""

    def __init__(self, group: RankGroup, run_dir: Path) -> None:
        self.group = group
        self.run_dir = run_dir
        self.names: dict[str, str] = {}
        self.sources: list[str] = []
        self.nodes: list[int] = []
        self.files: RankFiles | None = None

    def start(self, meter: EnergyMeter, meta: RunMeta, batch: int) -> None:
        """Gather every rank's sources into meta.json's ``energy``, ``environment`` and
        ``distributed`` (on rank 0)."""
        ranks = self.group.ranks
        own = [s.name for s in meter.sources]
        self.names = {name: global_source(name, ranks) for name in own}
        energy = energy_meta(meter)
        mine = {
            "sources": {self.names[n]: v for n, v in energy["sources"].items()},
            "idle_power_w": {self.names[n]: v for n, v in energy["idle_power_w"].items()},
            "gpus": meter.hardware.gpu_models,
            "rank": self.group.describe([self.names[n] for n in own]),
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
        entry = distributed_meta(self.group, [g["rank"] for g in gathered], batch)
        meta.distributed = parse_entry(DistributedMeta, entry)

    def resume(self, start_epoch: int, epochs_kept: int, load: Callable[[], int]) -> int:
        """Rank 0's first epoch to train on every rank (the others load the checkpoint);
        rank 0 keeps each rank's files to the ``epochs_kept`` epochs of the run's own."""
        if self.group.is_main:
            self.files = RankFiles(self.run_dir, self.group.ranks.world, epochs_kept)
        start = self.group.agree(start_epoch)
        if not self.group.is_main and start > 0:
            load()
        return start

    def end_epoch(
        self, row: dict[str, Any], meter: EnergyMeter, epoch: int
    ) -> tuple[dict[str, Any], pd.DataFrame] | None:
        """Gather the epoch; on rank 0 write every rank's row and readings, and return the
        run's totals row (``rank_rows.total_row``) and all ranks' readings; None elsewhere."""
        mine = (rename_sources(row, self.names), rename_trace(meter.take_trace(), self.names))
        gathered = self.group.gather(mine)
        if gathered is None or self.files is None:
            return None
        rows = [g[0] for g in gathered]
        traces = [g[1] for g in gathered]
        self.files.write(rows, traces, epoch)
        readings = pd.concat([t for t in traces if not t.empty] or [traces[0]], ignore_index=True)
        return total_row(rows, self.sources, self.nodes), readings
