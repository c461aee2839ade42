"""The Lightning callback: a LightningModule's fit stored as a run that the report compares
with a profile run, with the same FLOP columns."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.integrations.lightning import EnergyCallback
from ssprop_energy.store import load_run, load_sweep
from tests.support.integration_loops import ENERGY, FLOP_COLUMNS, context, example


class Classifier(pl.LightningModule):
    def __init__(self, model: torch.nn.Module) -> None:
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
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _fit(tmp_path: Path, method: str, **options: object) -> EnergyCallback:
    spec, ctx = context(tmp_path, method)
    data, size = ctx.data, spec.data.batch_size
    callback = EnergyCallback(
        tmp_path / "recorded", "lightning", f"lightning {method}", spec.seed,
        example_input=example(spec, ctx), scheduler=getattr(ctx.method, "scheduler", None),
        energy=ENERGY, **options,
    )  # fmt: skip
    trainer = pl.Trainer(
        max_epochs=spec.train.epochs, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, callbacks=[callback],
    )  # fmt: skip
    train = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=size)
    val = DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and logging
        trainer.fit(Classifier(ctx.model), train, val)
    return callback


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, profiled: Path) -> Path:
    """One fit of the ssProp run, recorded under the profile's dense run."""
    (dense,) = [r for r in load_sweep(profiled) if r.meta.method == "dense"]
    run_dir = _fit(tmp_path_factory.mktemp("lightning"), "ssprop", compare_with=dense.path).run_dir
    assert run_dir is not None
    return run_dir


def test_a_fit_is_stored_with_the_profile_runs_flop_columns(recorded: Path, profiled: Path) -> None:
    run = load_run(recorded)
    (stored,) = [r for r in load_sweep(profiled) if r.meta.method == "ssprop"]
    assert run.status == "finished" and run.meta.notes == []
    assert run.meta.run_config["recorded_by"] == "lightning"
    assert run.epochs[FLOP_COLUMNS].equals(stored.epochs[FLOP_COLUMNS])
    for phase in ("data", "forward", "backward", "optimizer", "eval"):
        assert run.epochs[f"time_s_{phase}"].gt(0).all(), phase
    assert run.epochs["accuracy"].between(0, 1).all() and run.epochs["val_loss"].gt(0).all()
    assert run.epochs["train_loss"].gt(0).all()


def test_the_report_compares_a_fit_with_a_profile_run(
    tmp_path: Path, profiled: Path, recorded: Path
) -> None:
    run_dir = recorded
    out = tmp_path / "report"
    args = ["report", str(profiled), str(run_dir.parent), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    row = summary[summary["method_label"] == "lightning ssprop"].iloc[0]
    assert row["comparison_note"] == "compared"
    assert row["flops_backward_saving_pct"] > 0


def test_an_exception_in_the_fit_marks_the_run_failed(tmp_path: Path) -> None:
    class Broken(Classifier):
        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            if self.current_epoch == 1:
                raise ValueError("bad batch")
            return super().training_step(batch, index)

    spec, ctx = context(tmp_path, "dense")
    callback = EnergyCallback(tmp_path, "l", "broken", 0, example_input=example(spec, ctx),
                              energy=ENERGY)  # fmt: skip
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, callbacks=[callback])  # fmt: skip
    loader = DataLoader(TensorDataset(ctx.data.x_train, ctx.data.y_train), batch_size=16)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="bad batch"):
        warnings.simplefilter("ignore")
        trainer.fit(Broken(ctx.model), loader)
    assert callback.run_dir is not None
    run = load_run(callback.run_dir)
    assert run.status == "failed" and run.meta.error == "ValueError: bad batch"
    assert len(run.epochs) == 1
