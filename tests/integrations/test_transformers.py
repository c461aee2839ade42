"""The Hugging Face callback: a ``transformers.Trainer`` run (a tiny torch model, no hub,
``report_to="none"``) stored as a run that the report compares with a profile run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.integrations.transformers import EnergyCallback, column_of
from ssprop_energy.store import load_run, load_sweep
from tests.support.integration_loops import ENERGY, FLOP_COLUMNS, context, example


class Classifier(nn.Module):
    """The profile run's model, with the loss inside as a Hugging Face model has it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.model(x)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def _accuracy(prediction: Any) -> dict[str, float]:
    logits, labels = prediction.predictions, prediction.label_ids
    return {"accuracy": float(np.mean(np.argmax(logits, axis=1) == labels))}


def _train(tmp_path: Path, method: str, **options: object) -> EnergyCallback:
    spec, ctx = context(tmp_path, method)
    data, size = ctx.data, spec.data.batch_size
    callback = EnergyCallback(
        tmp_path / "recorded", "hf", f"hf {method}", spec.seed,
        example_input=example(spec, ctx), scheduler=getattr(ctx.method, "scheduler", None),
        energy=ENERGY, **options,
    )  # fmt: skip
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"), num_train_epochs=spec.train.epochs,
        per_device_train_batch_size=size, per_device_eval_batch_size=size,
        eval_strategy="epoch", save_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, dataloader_drop_last=False, seed=spec.seed,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=Classifier(ctx.model), args=args, callbacks=[callback],
        train_dataset=Pairs(data.x_train, data.y_train),
        eval_dataset=Pairs(data.x_val, data.y_val), compute_metrics=_accuracy,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return callback


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, profiled: Path) -> Path:
    """One training of the ssProp run, recorded under the profile's dense run."""
    (dense,) = [r for r in load_sweep(profiled) if r.meta.method == "dense"]
    run_dir = _train(
        tmp_path_factory.mktemp("transformers"), "ssprop", compare_with=dense.path
    ).run_dir
    assert run_dir is not None
    return run_dir


def test_a_training_is_stored_with_the_profile_runs_flop_columns(
    recorded: Path, profiled: Path
) -> None:
    run = load_run(recorded)
    (stored,) = [r for r in load_sweep(profiled) if r.meta.method == "ssprop"]
    assert run.status == "finished" and run.meta.notes == []
    assert run.meta.run_config["recorded_by"] == "transformers"
    assert run.epochs[FLOP_COLUMNS].equals(stored.epochs[FLOP_COLUMNS])
    for phase in ("data", "forward", "backward", "optimizer", "eval"):
        assert run.epochs[f"time_s_{phase}"].gt(0).all(), phase
    assert run.epochs["accuracy"].between(0, 1).all() and run.epochs["val_loss"].gt(0).all()
    assert run.epochs["train_loss"].gt(0).all()


def test_the_report_compares_a_training_with_a_profile_run(
    tmp_path: Path, profiled: Path, recorded: Path
) -> None:
    run_dir = recorded
    out = tmp_path / "report"
    args = ["report", str(profiled), str(run_dir.parent), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    row = summary[summary["method_label"] == "hf ssprop"].iloc[0]
    assert row["comparison_note"] == "compared"
    assert row["flops_backward_saving_pct"] > 0


def test_evaluation_metrics_become_epoch_columns() -> None:
    assert column_of("eval_loss") == "val_loss"
    assert column_of("eval_accuracy") == "accuracy"
    assert column_of("eval_f1") == "f1"
