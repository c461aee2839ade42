"""Sparse vs dense convolution backward time on the conv shapes of a CIFAR ResNet-18.

For every distinct conv shape of ResNet-18 at batch 64 (32x32 inputs) and keep 0.2, 0.5,
0.8 it prints the median backward time of ``SSPropConv2d`` divided by torch's dense
backward time, beside the ideal ratio (= keep); the channel-selection cost (scoring +
top-k + gathers, at keep 0.2) as a fraction of the dense backward; and ``own dense``, the
layer's own kernel calls at full width over torch's dense backward. That is 1.00 except for
strided 1x1 convolutions, which ssProp computes over the subsampled input (see
``ssprop_energy.sparse.kernels``): there part of the saving is the kernel, not the
sparsity, and ``ratio / own dense`` is what the sparsity alone saves. Then the same ratio
for a whole ResNet-18 training step.
All ratios are measured in one run, alternating dense and sparse repetitions so drifts hit
both alike; both memory formats by default. ``--device cuda`` runs it on the GPU (timers wait
for the GPU's queued work); the first line names the device and driver.

    python benchmarks/sparse_backward.py [--format both|contiguous|channels_last] [--reps 15]
        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from device import add_device_option, check_device, describe, synchronize
from torch import nn

from ssprop_energy import SSPropConv2d, convert_model, set_keep
from ssprop_energy.models import build_model
from ssprop_energy.sparse import select_channels
from ssprop_energy.sparse.functional import take
from ssprop_energy.sparse.kernels import conv_backward

KEEPS = (0.2, 0.5, 0.8)
# (in, out, input size, stride, kernel) of every distinct conv in a CIFAR ResNet-18
SHAPES = [
    (64, 64, 32, 1, 3),
    (64, 128, 32, 2, 3),
    (128, 128, 16, 1, 3),
    (64, 128, 32, 2, 1),
    (128, 256, 16, 2, 3),
    (256, 256, 8, 1, 3),
    (128, 256, 16, 2, 1),
    (256, 512, 8, 2, 3),
    (512, 512, 4, 1, 3),
    (256, 512, 8, 2, 1),
]


def interleaved_medians(
    fns: dict[str, Callable[[], object]], reps: int, device: str = "cpu"
) -> dict[str, float]:
    """Median seconds of each function, run round-robin ``reps`` times after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(2):
        for fn in fns.values():
            fn()
    synchronize(device)
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def conv_backward_ratios(fmt: torch.memory_format, reps: int, device: str) -> None:
    ratios = "  ".join(f"keep {k}: ratio (ideal)" for k in KEEPS)
    print(f"{'conv (in->out, size, stride, k)':34} {'dense ms':>9}  {ratios}  selection  own dense")
    for cin, cout, size, stride, kernel in SHAPES:
        x = torch.randn(64, cin, size, size, device=device)
        x = x.contiguous(memory_format=fmt).requires_grad_()
        layers = {"dense": nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)}
        for keep in KEEPS:
            layers[str(keep)] = SSPropConv2d(
                cin, cout, kernel, stride, kernel // 2, bias=False, keep=keep
            )
        fns: dict[str, Callable[[], object]] = {}
        for name, layer in layers.items():
            layer.to(device=device, memory_format=fmt)
            y = layer(x)
            dy = torch.randn_like(y)
            fns[name] = lambda y=y, dy=dy, w=layer.weight, x=x: torch.autograd.grad(
                y, [x, w], dy, retain_graph=True
            )
        dy = torch.randn_like(layers["dense"](x))
        weight = layers["dense"].weight

        def selection(dy: torch.Tensor = dy, weight: torch.Tensor = weight) -> object:
            idx = select_channels(dy, 0.2, 1, "topk")
            return take(dy, 1, idx), take(weight, 0, idx)

        conf = ([stride] * 2, [kernel // 2] * 2, [1, 1])

        def own_dense(
            dy: torch.Tensor = dy, weight: torch.Tensor = weight, x: torch.Tensor = x, conf=conf
        ) -> object:
            return conv_backward(dy, x.detach(), weight.detach(), *conf, 1, [True, True, False])

        fns["selection"] = selection
        fns["own"] = own_dense
        med = interleaved_medians(fns, reps, device)
        dense = med["dense"]
        cells = [f"{med[str(k)] / dense:14.2f} ({k:.2f})" for k in KEEPS]
        name = f"{cin}->{cout}, {size}x{size}, s{stride}, {kernel}x{kernel}"
        print(
            f"{name:34} {dense * 1e3:9.1f}  {'  '.join(cells)}  {med['selection'] / dense:8.1%}"
            f"  {med['own'] / dense:9.2f}"
        )


def train_step_ratio(fmt: torch.memory_format, reps: int, device: str, keep: float = 0.2) -> None:
    torch.manual_seed(0)
    dense = build_model("resnet18").to(device=device, memory_format=fmt)
    sparse = build_model("resnet18").to(device=device, memory_format=fmt)
    sparse.load_state_dict(dense.state_dict())
    convert_model(sparse, keep=keep, skip=("conv1",))
    set_keep(sparse, keep)
    x = torch.randn(64, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    target = torch.randint(0, 10, (64,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()
        opt.step()

    opt_d = torch.optim.SGD(dense.parameters(), lr=0.01, momentum=0.9)
    opt_s = torch.optim.SGD(sparse.parameters(), lr=0.01, momentum=0.9)
    med = interleaved_medians(
        {"dense": lambda: step(dense, opt_d), "sparse": lambda: step(sparse, opt_s)},
        reps,
        device,
    )
    print(
        f"ResNet-18 training step (batch 64, keep {keep}, first conv dense): "
        f"dense {med['dense'] * 1e3:.0f} ms, sparse {med['sparse'] * 1e3:.0f} ms, "
        f"ratio {med['sparse'] / med['dense']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["contiguous", "channels_last", "both"], default="both")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--step-reps", type=int, default=5)
    add_device_option(parser)
    args = parser.parse_args()
    check_device(args.device)
    formats = ["contiguous", "channels_last"] if args.format == "both" else [args.format]
    print(describe(args.device))
    for name in formats:
        fmt = torch.channels_last if name == "channels_last" else torch.contiguous_format
        torch.manual_seed(0)
        print(f"\n== memory format: {name} (model, input and gradients)")
        conv_backward_ratios(fmt, args.reps, args.device)
        train_step_ratio(fmt, args.step_reps, args.device)


if __name__ == "__main__":
    main()
