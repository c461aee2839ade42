"""EnergyMeter overhead on a CIFAR ResNet-18 training step (CPU, batch 64).

Runs training steps without any meter and with a running ``EnergyMeter`` (CodeCarbon
tracker, its 100 ms sampler, and the four windows the harness opens per step: data,
forward, backward, optimizer), alternating blocks of steps so drifts in machine load hit
both alike. Prints the median step time of each, their ratio, and a second, less noisy
figure: the measured cost of one window (begin + end) times four, over the plain step time.
Synthetic data (no download). The targets, printed beside the figures (the unit tests assert
no timings): an overhead <= 2% at 100 ms sampling, and one window under 2 ms.

With ``--check-seconds S`` it then trains for S seconds inside an extra ``step`` window and
prints the two consistency checks of the GPU targets: the energy counter against the
integrated power samples over the whole load (``EnergyMeter.cross_check``, target 5%), and
forward + backward + optimizer against the whole step (target 3%). ``--device cuda`` runs
all of it on the GPU (every timed step waits for the GPU's queued work, metered or not); the
first line names the device and driver.

    python benchmarks/meter_overhead.py [--rounds 4] [--steps 5] [--interval 0.1]
    python benchmarks/meter_overhead.py --device cuda --check-seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from device import add_device_option, check_device, describe, synchronize

from ssprop_energy.models import build_model
from ssprop_energy.profilers import EnergyMeter

PHASES = ("data", "forward", "backward", "optimizer")
OVERHEAD_TARGET = 0.02
"""Metered over plain step time, minus one."""
WINDOW_TARGET_S = 2e-3
"""One begin + end on a running meter."""


def make_step(batch_size: int, device: str) -> Callable[[EnergyMeter | None], None]:
    """One SGD step of a CIFAR ResNet-18 on a fresh synthetic batch, optionally metered."""
    torch.manual_seed(0)
    model = build_model("resnet18").to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def phase(meter: EnergyMeter | None, name: str, begin: bool) -> None:
        if meter is not None:
            if begin:
                meter.begin(name)
            else:
                meter.end(name)

    def step(meter: EnergyMeter | None) -> None:
        phase(meter, "data", True)
        x = torch.randn(batch_size, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch_size,), device=device)
        phase(meter, "data", False)
        phase(meter, "forward", True)
        loss = F.cross_entropy(model(x), y)
        phase(meter, "forward", False)
        phase(meter, "backward", True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        phase(meter, "backward", False)
        phase(meter, "optimizer", True)
        optimizer.step()
        phase(meter, "optimizer", False)

    return step


def window_cost_s(interval_s: float, pairs: int = 2000) -> float:
    """Seconds per begin/end pair on a running meter (with all of this machine's sources)."""
    with EnergyMeter(interval_s=interval_s) as meter:
        start = time.perf_counter()
        for _ in range(pairs):
            meter.begin("forward")
            meter.end("forward")
        return (time.perf_counter() - start) / pairs


def consistency_check(
    step: Callable[[EnergyMeter | None], None], seconds: float, interval_s: float
) -> None:
    """Train for ``seconds`` in ``step`` windows; print the counter/samples and phase-sum
    checks per source."""
    meter = EnergyMeter(interval_s=interval_s)
    with meter:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            with meter.window("step"):
                step(meter)
    rows = meter.summary().set_index("window")
    print(
        f"consistency over {rows.loc['step', 'time_s']:.1f} s, {rows.loc['step', 'count']} steps:"
    )
    for source in meter.sources:
        if source.provenance == "unavailable":
            continue
        column = f"energy_j_{source.name}"
        whole = rows.loc["step", column]
        parts = rows.loc[["forward", "backward", "optimizer"], column].sum()
        labels = "/".join(rows[f"provenance_{source.name}"].unique())
        print(
            f"  {source.name}: step {whole:.2f} J, forward+backward+optimizer {parts:.2f} J "
            f"({(parts / whole - 1) * 100:+.2f}%; data {rows.loc['data', column]:.2f} J), "
            f"provenance {labels}"
        )
    for name, check in meter.cross_check().items():
        print(
            f"  {name}: counter {check['counter_j']:.1f} J, integrated power samples "
            f"{check['sampled_j']:.1f} J ({check['relative_difference'] * 100:+.2f}%, "
            f"diverged: {check['diverged']})"
        )
    if not meter.cross_check():
        print("  no source has both an energy counter and power samples (no NVML GPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="steps per block")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.1, help="sampler period, s")
    add_device_option(parser)
    parser.add_argument(
        "--check-seconds",
        type=float,
        default=0.0,
        help="then train this long for the consistency checks",
    )
    args = parser.parse_args()
    check_device(args.device)
    print(describe(args.device))

    step = make_step(args.batch_size, args.device)
    for _ in range(2):  # warm-up: allocator, kernels
        step(None)
    synchronize(args.device)
    plain: list[float] = []
    metered: list[float] = []
    ratios: list[float] = []
    sources = ""
    for _ in range(args.rounds):
        block: list[float] = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step(None)
            synchronize(args.device)
            block.append(time.perf_counter() - start)
        plain += block
        with EnergyMeter(interval_s=args.interval) as meter:
            sources = ", ".join(f"{s.name}={s.provenance}" for s in meter.sources)
            metered_block: list[float] = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step(meter)
                synchronize(args.device)
                metered_block.append(time.perf_counter() - start)
        metered += metered_block
        ratios.append(statistics.median(metered_block) / statistics.median(block))
    cost = window_cost_s(args.interval)
    plain_s, metered_s = statistics.median(plain), statistics.median(metered)
    print(
        f"ResNet-18, {args.device} ({torch.get_num_threads()} CPU threads), "
        f"batch {args.batch_size}, sampler {args.interval * 1000:.0f} ms, sources: {sources}"
    )
    print(f"{args.rounds} rounds x {args.steps} steps each way")
    print(f"median step without meter: {plain_s:.3f} s")
    print(f"median step with meter:    {metered_s:.3f} s")
    print(
        f"ratio with/without: {metered_s / plain_s:.4f} (overhead "
        f"{(metered_s / plain_s - 1) * 100:+.2f}%, target <= {OVERHEAD_TARGET:.0%}); "
        "per-round ratios: " + ", ".join(f"{r:.3f}" for r in ratios)
    )
    print(
        f"one window (begin+end): {cost * 1e6:.1f} us (target < {WINDOW_TARGET_S * 1e6:.0f} us); "
        f"{len(PHASES)} windows per step = {len(PHASES) * cost / plain_s * 100:.4f}% of a step"
    )
    if args.check_seconds > 0:
        consistency_check(step, args.check_seconds, args.interval)


if __name__ == "__main__":
    main()
