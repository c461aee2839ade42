"""How many training steps do the gates need to reach their target keep?

Trains a small residual CNN (a stem convolution and one residual block of width 32, whose
32 channels between the block's two convolutions are gated; the model of the report in
docs/pruning.md#training-budget) on scikit-learn's digits (8x8, 1,400 training and 397
validation images, batch 64) with ``add_gates(model, target_keep)`` and the task loss plus
``weight * polarization_loss(model)``, under SGD with momentum 0.9, Adam and AdamW at their
usual learning rates. After every step it reads the consensus (the channels pruning would
keep) and prints, per optimizer and learning rate, the step from which the kept fraction
stays within 0.05 of the target to the end of the budget (``-``: not by then), the kept
fraction and mean polarization at the end, and the validation accuracy of the gated model
(eval mode: the consensus sub-network) beside the same model trained without gates.

With ``--model resnet18`` it trains the model of ``examples/green-methods.yaml`` instead
(a CIFAR-style ResNet-18 of width ``--width``, digits upsampled to ``--size`` pixels, eight
gated layers of 16 to 128 channels); the target is then reached when every layer is within
0.05 of it. ``--only sgd,adam`` picks optimizers, ``--no-dense`` skips the models without
gates.

    python benchmarks/gate_budget.py [--steps 600] [--seeds 2] [--target 0.5]
                                     [--weight 1.0] [--width 32] [--model residual|resnet18]
                                     [--size 8] [--only sgd,adam,adamw] [--no-dense]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssprop_energy.models import build_model
from ssprop_energy.pruning import TOLERANCE, add_gates, gate_states, gates, polarization_loss
from tests.support.residual_cnn import ResidualCNN

SETTINGS = [
    ("sgd", 0.01),
    ("sgd", 0.05),
    ("sgd", 0.1),
    ("adam", 1e-3),
    ("adam", 3e-3),
    ("adamw", 1e-3),
    ("adamw", 3e-3),
]


def optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:  # type: ignore[no-untyped-def]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr)


def digits(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x, torch.tensor(data.target)


def build(args: argparse.Namespace) -> nn.Module:
    if args.model == "resnet18":
        return build_model("resnet18", in_channels=1, width=args.width)
    return ResidualCNN(args.width)


def train(
    name: str, lr: float, seed: int, args: argparse.Namespace, gated: bool
) -> tuple[int | None, float, float, float]:
    """Steps to the target (None: not reached for good), kept fraction, polarization and
    validation accuracy at the end."""
    x, y = digits(args.size)
    xt, yt, xv, yv = x[:1400], y[:1400], x[1400:], y[1400:]
    torch.manual_seed(seed)
    model = build(args)
    if gated:
        add_gates(model, target_keep=args.target)
    opt = optimizer(name, model.parameters(), lr)
    last_far = -1
    kept = 1.0
    for step in range(args.steps):
        model.train()
        batch = torch.randint(0, len(xt), (64,), generator=torch.Generator().manual_seed(step))
        loss = F.cross_entropy(model(xt[batch]), yt[batch])
        if gated:
            loss = loss + args.weight * polarization_loss(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if gated:
            found = list(gates(model).values())
            kept = sum(int(g.consensus().sum()) for g in found) / sum(g.units for g in found)
            worst = max(abs(float(g.consensus().float().mean()) - args.target) for g in found)
            if worst > TOLERANCE:
                last_far = step
    model.eval()
    with torch.no_grad():
        accuracy = (model(xv).argmax(1) == yv).float().mean().item()
    polarization = float(gate_states(model)["polarization"].mean()) if gated else 0.0
    reached = last_far + 2 if last_far + 1 < args.steps else None
    return reached, kept, polarization, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--model", choices=["residual", "resnet18"], default="residual")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--only", default="sgd,adam,adamw")
    parser.add_argument("--no-dense", action="store_true")
    args = parser.parse_args()
    if args.width is None:
        args.width = 16 if args.model == "resnet18" else 32
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, cpu (1 thread); {args.steps} steps, batch 64, "
        f"target {args.target:g}, weight {args.weight:g}, {args.model} of width {args.width}, "
        f"digits at {args.size} px"
    )
    seeds = range(args.seeds)
    print(
        "| optimizer | lr | steps to target, per seed | kept at the end | polarization "
        "| accuracy gated | accuracy without gates |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    t0 = time.perf_counter()
    only = args.only.split(",")
    for name, lr in [(name, lr) for name, lr in SETTINGS if name in only]:
        runs = [train(name, lr, seed, args, gated=True) for seed in seeds]
        dense = (
            [] if args.no_dense else [train(name, lr, seed, args, gated=False)[3] for seed in seeds]
        )
        reached = ", ".join("-" if r[0] is None else str(r[0]) for r in runs)
        kept = " / ".join(f"{r[1]:.3f}" for r in runs)
        polar = " / ".join(f"{r[2]:.3f}" for r in runs)
        acc = " / ".join(f"{r[3]:.3f}" for r in runs)
        print(
            f"| {name} | {lr:g} | {reached} | {kept} | {polar} | {acc} | "
            f"{' / '.join(f'{a:.3f}' for a in dense)} |",
            flush=True,
        )
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
