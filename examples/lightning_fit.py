"""A PyTorch Lightning fit recorded with the EnergyCallback: a dense and an ssProp (keep 0.3)
run of a small CNN on synthetic data, then the report that compares them.

    pip install 'ssprop-energy[lightning]'
    python examples/lightning_fit.py [--out runs] [--epochs 3]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ssprop_energy import DropScheduler, build_report, convert_model, write_report
from ssprop_energy.integrations.lightning import EnergyCallback

ENERGY = {"codecarbon": False, "idle_s": 1.0}  # no CodeCarbon tracker: quick to start


class Classifier(pl.LightningModule):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y), batch_size=len(y))
        self.log("val_acc", (out.argmax(1) == y).float().mean(), batch_size=len(y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def make_data() -> tuple[DataLoader, DataLoader]:
    """Synthetic images whose class shifts their mean: learnable in a few epochs."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (640,), generator=gen)
    x = torch.randn(640, 3, 16, 16, generator=gen) + y.view(-1, 1, 1, 1) / 5
    train = DataLoader(TensorDataset(x[:512], y[:512]), batch_size=64, shuffle=True)
    return train, DataLoader(TensorDataset(x[512:], y[512:]), batch_size=64)


def fit(out: Path, label: str, model: nn.Module, epochs: int, dense: Path | None) -> Path:
    """Fit ``model``, recorded as run ``label`` (compared with the run ``dense`` when given);
    returns the run's folder."""
    train, val = make_data()
    scheduler = DropScheduler("constant", 0.3, epochs=epochs) if "ssprop" in label else None
    callback = EnergyCallback(
        out, "lightning", label, seed=0, example_input=next(iter(train))[0],
        scheduler=scheduler, energy=ENERGY, compare_with=dense,
    )  # fmt: skip
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, callbacks=[callback],
    )  # fmt: skip
    trainer.fit(Classifier(model), train, val)
    assert callback.run_dir is not None
    return callback.run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="lightning")  # advice on workers and logging
    dense = fit(args.out, "dense", make_model(), args.epochs, None)
    fit(args.out, "ssprop keep=0.3", convert_model(make_model(), keep=0.3), args.epochs, dense)
    report = build_report([args.out / "lightning"])
    for path in write_report(report, args.out / "lightning"):
        print(f"wrote {path}")
    print(report.headline)


if __name__ == "__main__":
    main()
