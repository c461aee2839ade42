"""Counting speed: ``count_flops`` (meta device, no compute) vs executing under FlopCounterMode.

Times one count of a CIFAR-style ResNet-50 at 224x224 (forward + backward: dense, converted
at keep 0.2, and dense counted at a hypothetical keep 0.2) each way and prints the ratio,
measured in one run. The unit tests time nothing; the targets are checked here.

    python benchmarks/count_speed.py [--batch 1] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ssprop_energy import convert_model
from ssprop_energy.flops import count_flops
from ssprop_energy.models import build_model


def executed(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    x = torch.randn(shape)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def median_time(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    shape = (args.batch, 3, 224, 224)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {shape}")
    cases = (  # label, keep of the converted ssProp layers, hypothetical keep of count_flops
        ("dense", None, None),
        ("converted at keep 0.2", 0.2, None),
        ("dense, counted at keep=0.2", None, 0.2),
    )
    for label, converted, hypothetical in cases:
        model = build_model("resnet50")
        if converted is not None:
            convert_model(model, keep=converted)
        count_flops(model, shape, keep=hypothetical)  # warm-up (imports, first dispatch)
        analytic = median_time(
            lambda m=model, k=hypothetical: count_flops(m, shape, keep=k), args.reps
        )
        counted = median_time(lambda m=model: executed(m, shape), max(1, args.reps - 1))
        met = analytic < 1.0 and counted / analytic >= 10
        print(
            f"ResNet-50 {label}: count_flops {analytic * 1e3:.0f} ms, FlopCounterMode "
            f"(executing) {counted * 1e3:.0f} ms, speed-up x{counted / analytic:.1f} "
            f"(target < 1 s and >= x10: {'met' if met else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
