"""A plain PyTorch loop recorded with RunRecorder: a dense and an ssProp (keep 0.3) run of
a small CNN on synthetic data, then the report that compares them.

    python examples/own_loop.py [--out runs] [--epochs 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy import DropScheduler, RunRecorder, build_report, convert_model, write_report

ENERGY = {"codecarbon": False, "idle_s": 1.0}  # no CodeCarbon tracker: quick to start


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def make_data() -> tuple[torch.Tensor, ...]:
    """Synthetic images whose class is the channel-mean pattern: learnable in a few epochs."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (640,), generator=gen)
    x = torch.randn(640, 3, 16, 16, generator=gen) + y.view(-1, 1, 1, 1) / 5
    return x[:512], y[:512], x[512:], y[512:]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    correct = (out.argmax(1) == y).float().mean()
    return {"val_loss": float(F.cross_entropy(out, y)), "accuracy": float(correct)}


def train(
    out: Path,
    label: str,
    model: nn.Module,
    scheduler: DropScheduler | None,
    epochs: int,
    dense: Path | None,
) -> Path:
    """Train ``model`` on the synthetic data, recorded as run ``label`` (compared with the
    run ``dense`` when given); returns the run's folder."""
    x_train, y_train, x_val, y_val = make_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batch = 64
    with RunRecorder(
        out, "own-loop", label, seed=0, model=model, example_input=x_train[:batch],
        scheduler=scheduler, energy=ENERGY, epochs=epochs, compare_with=dense,
    ) as rec:  # fmt: skip
        for _epoch in range(epochs):
            order = torch.randperm(len(x_train))
            for start in range(0, len(order), batch):
                with rec.phase("data"):
                    index = order[start : start + batch]
                    x, y = x_train[index], y_train[index]
                with rec.phase("forward"):
                    loss = F.cross_entropy(model(x), y)
                with rec.phase("backward"):
                    loss.backward()
                with rec.phase("optimizer"):
                    optimizer.step()
                    optimizer.zero_grad()
                rec.end_step(loss, samples=len(x))
            with rec.phase("eval"):
                metrics = accuracy(model, x_val, y_val)
            rec.end_epoch(metrics, eval_samples=len(x_val))
    return rec.run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    dense = train(args.out, "dense", make_model(), None, args.epochs, None)
    sparse = convert_model(make_model(), keep=0.3)
    scheduler = DropScheduler("constant", 0.3, epochs=args.epochs)
    train(args.out, "ssprop keep=0.3", sparse, scheduler, args.epochs, dense)
    report = build_report([args.out / "own-loop"])
    for path in write_report(report, args.out / "own-loop"):
        print(f"wrote {path}")
    print(report.headline)


if __name__ == "__main__":
    main()
