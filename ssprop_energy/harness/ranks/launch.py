"""Launching a distributed run through PyTorch's launcher, what it refuses, and how a launch
or a rank fails."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

from ...errors import UserError
from ...tasks import TASKS, Task
from ..config import ProfileConfig


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


def launch_ranks(how: Launch, command: list[str]) -> str | None:
    """Run ``python -m ssprop_energy COMMAND...`` on every rank through
    ``torch.distributed.run``; None when every rank ended with status 0, else one line
    naming the first rank that did not. The launcher's own environment is left as it was
    (torchrun sets ``OMP_NUM_THREADS`` and others in it for its workers)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
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
    except SignalException as exc:  # the launcher has stopped its ranks (they saw it too)
        raise LaunchStopped(int(exc.sigval)) from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return None


class LaunchStopped(Exception):
    """The launcher got Ctrl-C, SIGTERM or SIGHUP; its ranks were stopped with it (each marks
    its run ``interrupted``). ``signum``: the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


PR_SET_PDEATHSIG = 1
"""Linux's prctl option: the signal the kernel sends a process when its parent dies."""


def die_with_launcher() -> None:
    """On Linux, have the kernel send this rank SIGTERM when its launcher dies, even by
    ``kill -9`` (the rank then stops like on Ctrl-C, its run ``interrupted``), so no rank
    trains on as an orphan; a launcher gone before the request is the same signal at once.
    Only in a worker of PyTorch's launcher (``TORCHELASTIC_RUN_ID`` set), on Linux."""
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return  # not Linux, or not a worker of PyTorch's launcher
    import ctypes

    launcher = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != launcher:
        os.kill(os.getpid(), signal.SIGTERM)


class LaunchFailed(Exception):
    """A rank of a launched run did not end with status 0 (one line naming it)."""


class RankFailed(Exception):
    """This rank's sweep raised (left where the launcher reads it); the message names the
    rank and the exception."""

    def __init__(self, rank: int, exc: BaseException) -> None:
        super().__init__(f"rank {rank}: {type(exc).__name__}: {exc}")
        self.rank = rank


def record_failure(exc: BaseException) -> None:
    """Leave a rank's exception where torchrun reads it (``TORCHELASTIC_ERROR_FILE``), so
    the launcher names it in its one line."""
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        ErrorHandler().record_exception(exc)  # type: ignore[arg-type]
