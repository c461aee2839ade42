"""Per-step cost, on 2 CPU processes (gloo, DistributedDataParallel), of the distributed run's
metering and gathering, and of ssProp's ``sync_selection``.

Two ranks train a small CNN on 32x32 images (batch 32 per rank). Rounds alternate, in the same
processes, so drifts in machine load hit every variant alike:

- ``plain``: DDP steps, no meter;
- ``metered``: the same steps inside the meter a distributed run builds for the rank (local
  rank 0: the CPU estimate and CodeCarbon's tracker, 100 ms sampler; the other rank: no CPU
  source), a window per phase (data, forward, backward, optimizer) as the trainer opens
  them, and at the end of every "epoch" of ``--steps`` steps the gather of every rank's epoch
  row and power readings to rank 0 (``RankGroup.gather``, as ``RankSink.end_epoch``);
- ``ssprop`` and ``ssprop-sync``: ssProp at keep 0.2 without and with ``sync_selection``
  (no meter).

A step's time is the slowest rank's (the ranks wait for each other in every step's
all-reduce anyway). Prints each variant's median step time over all rounds, the ratios
metered / plain - 1 (target: at most 3%) and ssprop-sync / ssprop - 1, and each round's
ratios (the spread).

    python benchmarks/ddp_overhead.py [--rounds 5] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from ssprop_energy.harness.config import EnergyConfig
from ssprop_energy.harness.ranks.environment import Ranks
from ssprop_energy.harness.ranks.group import RankGroup
from ssprop_energy.harness.ranks.run import rank_meter_options
from ssprop_energy.harness.run.metering import build_meter
from ssprop_energy.methods.ssprop import SSProp, SSPropConfig
from ssprop_energy.sparse import set_keep

TARGET = 0.03
WORLD = 2
BATCH = 32
WARMUP_STEPS = 3
VARIANTS = ("plain", "metered", "ssprop", "ssprop-sync")


def make_model(variant: str) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    if variant.startswith("ssprop"):
        method = SSProp(SSPropConfig(keep=0.2, sync_selection=variant == "ssprop-sync"), 1)
        model = method.prepare(model)
        set_keep(model, 0.2)
    return model


class _NoMeter:
    def begin(self, name: str) -> None: ...

    def end(self, name: str) -> None: ...


def steps_of(variant: str, group: RankGroup, steps: int, rank: int) -> list[float]:
    """Step times (s) of one round of ``variant`` on this rank."""
    model = make_model(variant)
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(BATCH * (steps + WARMUP_STEPS), 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (len(x),), generator=gen)
    energy = rank_meter_options(group, EnergyConfig(gpus=None, idle_s=0))
    meter = build_meter(energy, torch.device("cpu")) if variant == "metered" else None
    windows: Any = meter or _NoMeter()
    times = []
    if meter is not None:
        meter.start()
    try:
        for step in range(steps + WARMUP_STEPS):
            start = time.perf_counter()
            windows.begin("data")
            xb, yb = x[step * BATCH : (step + 1) * BATCH], y[step * BATCH : (step + 1) * BATCH]
            windows.end("data")
            windows.begin("forward")
            loss = F.cross_entropy(ddp(xb), yb)
            windows.end("forward")
            windows.begin("backward")
            loss.backward()
            windows.end("backward")
            windows.begin("optimizer")
            opt.step()
            opt.zero_grad(set_to_none=True)
            windows.end("optimizer")
            if meter is not None and step == steps + WARMUP_STEPS - 1:
                row = {"epoch": 0, **meter.summary().iloc[0].to_dict()}
                group.gather((row, meter.take_trace()))
            if step >= WARMUP_STEPS:
                times.append(time.perf_counter() - start)
    finally:
        if meter is not None:
            meter.stop()
    return times


def worker(rank: int, port: int, rounds: int, steps: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    group = RankGroup(Ranks(rank, WORLD, rank, WORLD, 0), "gloo")
    results: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    for round_ in range(rounds):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            results[variant].append(steps_of(variant, group, steps, rank))
    Path(out, f"rank-{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="ddp-overhead-")
    mp.start_processes(
        worker, args=(free_port(), args.rounds, args.steps, out), nprocs=WORLD, start_method="spawn"
    )
    ranks = [json.loads(Path(out, f"rank-{r}.json").read_text()) for r in range(WORLD)]
    # the slowest rank's time of each step
    slowest = {
        v: [
            [max(ts) for ts in zip(*(r[v][i] for r in ranks), strict=True)]
            for i in range(args.rounds)
        ]
        for v in VARIANTS
    }
    median = {v: statistics.median(t for rnd in slowest[v] for t in rnd) for v in VARIANTS}
    for v in VARIANTS:
        print(f"{v:12s} median step {1000 * median[v]:.2f} ms")
    for name, (a, b) in {
        "metering and gathering (metered / plain - 1)": ("metered", "plain"),
        "sync_selection (ssprop-sync / ssprop - 1)": ("ssprop-sync", "ssprop"),
    }.items():
        per_round = [
            statistics.median(slowest[a][i]) / statistics.median(slowest[b][i]) - 1
            for i in range(args.rounds)
        ]
        overall = median[a] / median[b] - 1
        rounds = ", ".join(f"{100 * r:+.1f}%" for r in per_round)
        print(f"{name}: {100 * overall:+.2f}% (rounds: {rounds})")
    print(
        f"target for metering and gathering: at most {100 * TARGET:.0f}%; "
        f"load average {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
