"""The process group of a distributed run: joining and leaving it, its collectives, and DDP
wrapping."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..run.build import RunContext
from .environment import Ranks

T = TypeVar("T")

TIMEOUT = timedelta(minutes=30)
"""How long a rank waits in a collective for the others (then the run fails)."""


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

    def leave(self) -> None:
        """Leave the process group (at the end of a rank's command)."""
        if dist.is_initialized():
            dist.destroy_process_group()


def _broadcast_buffers(model: nn.Module) -> None:
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
