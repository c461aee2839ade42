"""One run on many processes: PyTorch's launcher starts them, DistributedDataParallel trains.

``profile --nproc-per-node N`` hands the command to ``torch.distributed.run`` (torchrun's own
code), which starts ``python -m ssprop_energy profile ...`` once per rank; a process started
by torchrun finds its place in the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ...). NCCL on GPUs, gloo on the CPU. Every rank trains its
``DistributedSampler`` shard of the data in ``DistributedDataParallel`` and meters its own GPU
(CUDA device = its local rank); local rank 0 of every node also meters the node's CPU and runs
CodeCarbon. Rank 0 claims the run, gathers the other ranks' epoch rows and power readings
with ``gather_object`` at each epoch's end, and alone writes the store (docs/distributed.md).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from ..errors import UserError
from ..profilers import EnergyMeter, energy_meta
from ..store import (
    DistributedMeta,
    RunMeta,
    SourceMeta,
    parse_entry,
    parse_source_column,
    source_column,
)
from ..tasks import TASKS, Task
from .build import RunContext
from .config import EnergyConfig, ProfileConfig
from .rank_rows import RankFiles, total_row

T = TypeVar("T")

TIMEOUT = timedelta(minutes=30)
"""How long a rank waits in a collective for the others (then the run fails)."""
RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run (torchrun's environment)."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    node: int

    @property
    def is_main(self) -> bool:
        """Rank 0: claims the run and writes the store."""
        return self.rank == 0

    @property
    def meters_node(self) -> bool:
        """Local rank 0: meters the node's CPU and runs CodeCarbon."""
        return self.local_rank == 0

    @property
    def nodes(self) -> int:
        return -(-self.world // self.local_world)


def ranks_from_env(environ: Mapping[str, str] | None = None) -> Ranks | None:
    """The place torchrun gave this process; None outside torchrun (no ``WORLD_SIZE``)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        values = [
            int(env.get(name, "0" if name == "LOCAL_RANK" else "1")) for name in RANK_VARIABLES
        ]
        node = int(env.get("GROUP_RANK", "0"))
    except ValueError:
        shown = ", ".join(f"{n}={env.get(n)!r}" for n in RANK_VARIABLES)
        raise UserError(f"torchrun environment: expected whole numbers, got {shown}") from None
    rank, world, local_rank, local_world = values
    if not 0 <= rank < world or not 0 <= local_rank < local_world:
        raise UserError(f"torchrun environment: RANK={rank} of WORLD_SIZE={world} is not valid")
    return Ranks(rank, world, local_rank, local_world, node)


@dataclass
class RankGroup:
    """The process group of a distributed run, and the few collectives the harness uses."""

    ranks: Ranks
    backend: str
    host: str = field(default_factory=socket.gethostname)

    @classmethod
    def start(cls, ranks: Ranks, device: str) -> RankGroup:
        """Join the run's process group: NCCL when the config trains on CUDA, else gloo."""
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(ranks.local_rank)
        backend = "nccl" if cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=TIMEOUT)
        return cls(ranks, backend)

    @property
    def is_main(self) -> bool:
        return self.ranks.is_main

    def device(self) -> torch.device | None:
        """This rank's CUDA device (by local rank), or None (the config's device)."""
        return torch.device("cuda", self.ranks.local_rank) if self.backend == "nccl" else None

    def agree(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value`` on rank 0, in rank order (None on the other ranks)."""
        out: list[T] | None = [value] * self.ranks.world if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def distribute(self, ctx: RunContext) -> None:
        """Train ``ctx`` as this rank: its data shard, the model in DistributedDataParallel."""
        ctx.part = (self.ranks.rank, self.ranks.world)
        ctx.wrap = self._ddp
        ctx.trained = self._ddp(ctx.model)
        ctx.share_buffers = _broadcast_buffers

    def _ddp(self, model: nn.Module) -> nn.Module:
        ids = None if self.backend == "gloo" else [self.ranks.local_rank]
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def meter_options(self, energy: EnergyConfig) -> EnergyConfig:
        """This rank's ``energy`` section: its own GPU; the node's CPU and CodeCarbon on local
        rank 0 only (CodeCarbon's lock file allows one tracker per machine)."""
        gpus = [self.ranks.local_rank] if energy.gpus is not None else None
        if self.ranks.meters_node:
            return energy.model_copy(update={"gpus": gpus})
        return energy.model_copy(update={"gpus": gpus, "cpu": None, "codecarbon": False})

    def describe(self, sources: Sequence[str]) -> dict[str, Any]:
        """This rank's entry in meta.json's ``distributed.ranks``."""
        r = self.ranks
        return {
            "rank": r.rank,
            "local_rank": r.local_rank,
            "node": r.node,
            "host": self.host,
            "sources": list(sources),
        }


def _broadcast_buffers(model: nn.Module) -> None:
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def global_source(name: str, ranks: Ranks) -> str:
    """A source's name in the run's store: a GPU by global rank (``gpu<rank>``, one GPU per
    rank), the CPU and DRAM of node ``n > 0`` as ``cpu<n>``, ``dram<n>`` (node 0 keeps
    ``cpu``, ``dram``), so names are unique across the run's nodes."""
    if name.startswith("gpu"):
        return f"gpu{ranks.rank}"
    return name if ranks.node == 0 else f"{name}{ranks.node}"


def rename_sources(row: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """An epoch row with its per-source columns (``energy_j_<source>``,
    ``energy_j_<phase>_<source>``, ``provenance_<source>``) under the new names."""
    out = {}
    for column, value in row.items():
        parsed = parse_source_column(column)
        if parsed is not None and parsed[2] in names:
            column = source_column(parsed[0], names[parsed[2]], parsed[1])
        out[column] = value
    return out


def rename_trace(frame: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.assign(source=frame["source"].map(lambda s: names.get(s, s)))


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


def check_distributable(cfg: ProfileConfig) -> None:
    """A UserError for a config a distributed launch cannot train: the differential phase
    calibration times blocks of steps on one process, and a task's end-of-epoch work
    (``Task.end_epoch``: a generation run's sampling) runs on one model, not on every rank."""
    where = "not available for runs on many processes (--nproc-per-node, torchrun)"
    if cfg.energy.phase_calibration:
        raise UserError(
            f"energy.phase_calibration: {where}; calibrate on one process or turn it off"
        )
    if TASKS.get(cfg.task.name).end_epoch is not Task.end_epoch:
        raise UserError(f"task.name: {cfg.task.name} is {where}; train it on one process")


@dataclass(frozen=True)
class Launch:
    """Where ``profile --nproc-per-node`` starts its ranks (torchrun's own options)."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    def torchrun_args(self) -> list[str]:
        """torchrun's options: ``--standalone`` (a free local port) for one node without an
        address, else a static rendezvous at the master's address and port."""
        for name, value, low in (
            ("--nproc-per-node", self.nproc_per_node, 1),
            ("--nnodes", self.nnodes, 1),
            ("--node-rank", self.node_rank, 0),
        ):
            if value < low:
                raise UserError(f"{name}: must be >= {low}, got {value}")
        if self.node_rank >= self.nnodes:
            raise UserError(
                f"--node-rank: must be < --nnodes ({self.nnodes}), got {self.node_rank}"
            )
        args = [f"--nproc-per-node={self.nproc_per_node}"]
        if self.nnodes == 1 and self.master_addr is None and self.master_port is None:
            return [*args, "--standalone"]
        if self.nnodes > 1 and self.master_addr is None:
            raise UserError("--master-addr: required with --nnodes above 1 (rank 0's node)")
        port = 29500 if self.master_port is None else self.master_port
        if not 0 < port < 65536:
            raise UserError(f"--master-port: must be a port number (1 to 65535), got {port}")
        return [
            *args,
            f"--nnodes={self.nnodes}",
            f"--node-rank={self.node_rank}",
            f"--master-addr={self.master_addr or '127.0.0.1'}",
            f"--master-port={port}",
        ]


def launch(how: Launch, command: list[str]) -> str | None:
    """Run ``python -m ssprop_energy COMMAND...`` on every rank through
    ``torch.distributed.run``; None when every rank ended with status 0, else one line
    naming the first rank that did not. The launcher's own environment is left as it was
    (torchrun sets ``OMP_NUM_THREADS`` and others in it for its workers)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    saved = dict(os.environ)
    try:
        torchrun.run(
            torchrun.parse_args([*how.torchrun_args(), "--module", "ssprop_energy", *command])
        )
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = str(failure.message).strip().splitlines()
        why = message[0] if message and not message[0].startswith("To enable") else ""
        return f"rank {rank} exited with status {failure.exitcode}" + (f": {why}" if why else "")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return None


def record_failure(exc: BaseException) -> None:
    """Leave a rank's exception where torchrun reads it (``TORCHELASTIC_ERROR_FILE``), so
    the launcher names it in its one line."""
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        ErrorHandler().record_exception(exc)  # type: ignore[arg-type]


def leave(group: RankGroup | None) -> None:
    """Leave the process group (at the end of a rank's command)."""
    if group is not None and dist.is_initialized():
        dist.destroy_process_group()
