"""Does time fall with the FLOPs once gated pruning has removed half the channels?

Builds the model of ``examples/green-methods.yaml`` (a width-16 ResNet-18 at 16x16, batch 64)
three ways: dense, gated (every gated layer's consensus keeps half its channels) and that
gated model pruned with ``prune_gated``. It times training steps (forward, backward, SGD) and
inference batches (eval mode, no grad, batch 1 and 64) round-robin, so drifts of a shared
machine hit all three alike, and prints each time ratio (median of the per-round ratios,
with the 10th-90th percentile of those ratios) beside the analytic FLOP ratio.

    python benchmarks/pruned_step.py [--rounds 30] [--batch 64] [--width 16] [--size 16]
                                     [--level channel|block]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy.flops import count_flops
from ssprop_energy.models import build_model
from ssprop_energy.pruning import add_gates, gates, prune_gated


def half_open(model: nn.Module) -> None:
    """Every gate's consensus keeps every other unit (block gates: every other block)."""
    for i, gate in enumerate(gates(model).values()):
        first = 0 if gate.units > 1 else i
        gate.open_fraction.copy_(((torch.arange(gate.units) + first) % 2 == 0).float())


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        model.train()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def infer(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    return run


def rounds(fns: dict[str, Callable[[], None]], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(n):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict[str, list[float]], a: str, b: str) -> str:
    per_round = sorted(x / y for x, y in zip(times[a], times[b], strict=True))
    lo = per_round[len(per_round) // 10]
    hi = per_round[(9 * len(per_round)) // 10]
    return f"{statistics.median(per_round):.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--level", choices=("channel", "block"), default="channel")
    args = parser.parse_args()
    torch.manual_seed(0)
    dense = build_model("resnet18", in_channels=1, width=args.width)
    gated = add_gates(
        build_model("resnet18", in_channels=1, width=args.width), target_keep=0.5, level=args.level
    )
    half_open(gated)
    pruned = prune_gated(gated)
    models = {"dense": dense, "gated": gated, "pruned": pruned}
    shape = (args.batch, 1, args.size, args.size)
    x, y = torch.randn(shape), torch.randint(0, 10, (args.batch,))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {shape}")
    flops = {k: count_flops(m, shape) for k, m in models.items()}
    train = rounds({k: train_step(m, x, y) for k, m in models.items()}, args.rounds)
    print("training step (forward + backward + SGD):")
    for a, b in (("pruned", "gated"), ("pruned", "dense"), ("gated", "dense")):
        f = (flops[a].forward + flops[a].backward) / (flops[b].forward + flops[b].backward)
        print(f"  {a}/{b}: time {ratio(train, a, b)}   FLOPs {f:.3f}")
    for batch in (1, args.batch):
        xb = x[:batch]
        times = rounds({k: infer(m, xb) for k, m in models.items()}, args.rounds)
        print(f"inference, batch {batch}:")
        for a, b in (("pruned", "dense"), ("gated", "dense")):
            f = (
                count_flops(models[a], (batch, 1, 16, 16)).forward
                / count_flops(models[b], (batch, 1, 16, 16)).forward
            )
            print(f"  {a}/{b}: time {ratio(times, a, b)}   forward FLOPs {f:.3f}")
    print(f"parameters: dense {_params(dense)}, pruned {_params(pruned)}")


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    main()
