"""ResNet-18 epoch wall time: ssProp vs dense, and the harness's own overhead.

Trains CIFAR-style ResNet-18 on 32x32 synthetic inputs (batch 64) with the harness's own
trainer and EnergyMeter, and prints, measured in one run:

- epoch time with ssProp keep 0.2 constant / dense, beside the analytic FLOP ratio;
- the same for keep 0.2 interleaved (a dense and a sparse epoch, averaged);
- harness overhead: a metered, counted training epoch vs a bare loop over the same steps.

``--device cuda`` trains on the GPU (with ``--amp``: float16 autocast and a gradient scaler,
as the harness does), metering the GPUs as the harness does; the first line names the
device and driver.

    python benchmarks/epoch_time.py [--samples 576] [--device cpu|cuda] [--amp]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F
from device import add_device_option, check_device, describe, synchronize

from ssprop_energy.harness.config import parse_config
from ssprop_energy.harness.run.build import RunContext, build_run
from ssprop_energy.harness.run.trainer import train_epoch, warm_up
from ssprop_energy.harness.runs import RunSpec, plan_runs
from ssprop_energy.profilers import EnergyMeter


def config(samples: int, device: str = "cpu", amp: bool = False) -> dict[str, Any]:
    return {
        "name": "epoch-time",
        "model": {"name": "resnet18"},
        "data": {
            "name": "synthetic",
            "image_size": 32,
            "channels": 3,
            "samples": samples,
            "batch_size": 64,
            "val_split": 0.1,
        },
        "train": {"epochs": 2, "device": device, "amp": amp, "lr": 0.01},
        "methods": [
            {"name": "dense"},
            {"name": "ssprop", "keep": 0.2, "skip_layers": ["conv1"]},
            {"name": "ssprop", "keep": 0.2, "interleave": True, "skip_layers": ["conv1"]},
        ],
        "energy": {"codecarbon": True, "idle_s": 0},
    }


def metered(spec: RunSpec) -> EnergyMeter:
    """The meter the timed epochs run under: the GPUs (synchronised at window edges, as in
    the harness) where the run is on CUDA, and CodeCarbon's CPU estimate."""
    gpus = "auto" if spec.train.device.startswith("cuda") else None
    return EnergyMeter(gpus=gpus, cpu="codecarbon", interval_s=0.1)


def timed_epochs(spec: RunSpec, epochs: list[int]) -> tuple[float, float, float]:
    """(seconds, backward FLOPs, dense backward FLOPs) summed over ``epochs``."""
    ctx = build_run(spec)
    warm_up(ctx, spec)
    seconds = flops = dense = 0.0
    with metered(spec) as meter:
        for epoch in epochs:
            start = time.perf_counter()
            row = train_epoch(ctx, spec, meter, epoch)
            seconds += time.perf_counter() - start - row["time_s_eval"]
            flops += row["flops_backward"]
            dense += row["flops_backward_dense"]
    return seconds, flops, dense


def bare_epoch(ctx: RunContext, spec: RunSpec) -> float:
    """The same steps with nothing around them: no meter, no counters, no bookkeeping."""
    model, opt, device = ctx.model, ctx.optimizer, ctx.device
    amp = spec.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    start = time.perf_counter()
    for x, y in ctx.data.train_batches(spec.data.batch_size, 0, spec.seed):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    synchronize(device.type)
    return time.perf_counter() - start


def harness_overhead(spec: RunSpec, rounds: int) -> float:
    ctx = build_run(spec)
    warm_up(ctx, spec)
    bare, harnessed = [], []
    with metered(spec) as meter:
        for _ in range(rounds):
            bare.append(bare_epoch(ctx, spec))
            start = time.perf_counter()
            row = train_epoch(ctx, spec, meter, 0)
            harnessed.append(time.perf_counter() - start - row["time_s_eval"])
    return min(harnessed) / min(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=576)
    parser.add_argument("--overhead-rounds", type=int, default=3)
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    add_device_option(parser)
    args = parser.parse_args()
    check_device(args.device)
    runs = plan_runs(parse_config(config(args.samples, args.device, args.amp)))
    dense, constant, interleaved = runs
    steps = -(-int(args.samples * 0.9) // 64)
    print(describe(args.device))
    print(
        f"ResNet-18, batch 64, 32x32, amp {args.amp}, {steps} steps per epoch "
        "(training only, eval excluded)"
    )
    d_time, _, d_flops = timed_epochs(dense, [0])
    c_time, c_flops, _ = timed_epochs(constant, [0])
    i_time, i_flops, i_dense = timed_epochs(interleaved, [0, 1])
    print(f"dense epoch: {d_time:.1f} s")
    print(
        f"keep 0.2 constant:    time ratio {c_time / d_time:.2f}, "
        f"backward FLOP ratio {c_flops / d_flops:.2f}"
    )
    print(
        f"keep 0.2 interleaved: time ratio {i_time / 2 / d_time:.2f}, "
        f"backward FLOP ratio {i_flops / i_dense:.2f} (per epoch, dense+sparse averaged)"
    )
    ratio = harness_overhead(dense, args.overhead_rounds)
    print(
        f"harness overhead (metered, counted epoch / bare loop, best of "
        f"{args.overhead_rounds}): {100 * (ratio - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
