"""A Hugging Face ``Trainer`` run recorded with the EnergyCallback: a dense and an ssProp
(keep 0.3) run of a small torch CNN on synthetic data (no download from the hub), then the
report that compares them.

    pip install 'ssprop-energy[transformers]'
    python examples/hf_trainer.py [--out runs] [--epochs 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainingArguments

from ssprop_energy import DropScheduler, build_report, convert_model, write_report
from ssprop_energy.integrations.transformers import EnergyCallback

ENERGY = {"codecarbon": False, "idle_s": 1.0}  # no CodeCarbon tracker: quick to start


class Classifier(nn.Module):
    """A CNN with its loss inside, as a Hugging Face model has it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.model(x)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


class Images(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def make_data() -> tuple[Images, Images]:
    """Synthetic images whose class shifts their mean: learnable in a few epochs."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (640,), generator=gen)
    x = torch.randn(640, 3, 16, 16, generator=gen) + y.view(-1, 1, 1, 1) / 5
    return Images(x[:512], y[:512]), Images(x[512:], y[512:])


def accuracy(prediction: Any) -> dict[str, float]:
    logits, labels = prediction.predictions, prediction.label_ids
    return {"accuracy": float(np.mean(np.argmax(logits, axis=1) == labels))}


def train(out: Path, label: str, model: nn.Module, epochs: int, dense: Path | None) -> Path:
    """Train ``model``, recorded as run ``label`` (compared with the run ``dense`` when
    given); returns the run's folder."""
    train_set, val_set = make_data()
    scheduler = DropScheduler("constant", 0.3, epochs=epochs) if "ssprop" in label else None
    callback = EnergyCallback(
        out, "hf", label, seed=0, example_input=train_set.x[:64], scheduler=scheduler,
        energy=ENERGY, compare_with=dense,
    )  # fmt: skip
    args = TrainingArguments(
        output_dir=str(out / "hf-trainer"), num_train_epochs=epochs, learning_rate=0.05,
        optim="sgd", per_device_train_batch_size=64, per_device_eval_batch_size=64,
        eval_strategy="epoch", save_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    Trainer(
        model=Classifier(model), args=args, train_dataset=train_set, eval_dataset=val_set,
        compute_metrics=accuracy, callbacks=[callback],
    ).train()  # fmt: skip
    assert callback.run_dir is not None
    return callback.run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    dense = train(args.out, "dense", make_model(), args.epochs, None)
    train(args.out, "ssprop keep=0.3", convert_model(make_model(), keep=0.3), args.epochs, dense)
    report = build_report([args.out / "hf"])
    for path in write_report(report, args.out / "hf"):
        print(f"wrote {path}")
    print(report.headline)


if __name__ == "__main__":
    main()
