"""The gated methods end to end: pruning mid-run, resume across it, and bad config values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.harness.run import trainer
from ssprop_energy.reports import sweep_report
from ssprop_energy.store import load_sweep
from tests.support.harness_configs import write_config

runner = CliRunner()
GATED = {"name": "gated", "target_keep": 0.5, "prune_at_epoch": 2}
MODEL = {"name": "cnn", "kwargs": {"depth": 3, "width": 8}}


def _config(tmp_path: Path, methods: list[dict]) -> Path:
    return write_config(tmp_path, model=MODEL, train={"epochs": 4}, methods=methods)


def test_gated_prunes_at_its_epoch_and_stores_its_gates(tmp_path: Path) -> None:
    config = _config(tmp_path, [GATED, {**GATED, "name": "gated+ssprop", "keep": 0.5}])
    result = runner.invoke(app, ["profile", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    for run in load_sweep(tmp_path / "runs" / "tiny"):
        assert run.status == "finished"
        forward = run.epochs["flops_forward"].tolist()
        assert forward[0] == forward[1] > forward[2] == forward[3]  # pruned before epoch 2
        gates = pd.read_csv(run.path / "gates.csv")
        assert list(gates.columns) == [
            "layer", "level", "channels", "kept", "open_fraction", "polarization", "target",
            "distance",
        ]  # fmt: skip
        assert gates["kept"].le(gates["channels"]).all()
    label = {r.meta.method: r.meta.method_label for r in load_sweep(tmp_path / "runs/tiny")}
    assert label == {
        "gated": "gated target=0.5 prune@2",
        "gated+ssprop": "gated+ssprop keep=0.5 target=0.5 prune@2",
    }


def test_resume_across_the_pruning_epoch_matches_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = _config(tmp_path / "a", [GATED])
    assert runner.invoke(app, ["profile", str(straight), "--quiet"]).exit_code == 0
    broken = _config(tmp_path / "b", [GATED])
    real = trainer.train_epoch
    for stop_at in (2, 3):  # before epoch 1 (gated), then before epoch 3 (after pruning)
        calls = {"n": 0}

        def flaky(ctx, spec, meter, epoch, on_step=None, stop_at=stop_at, calls=calls):
            calls["n"] += 1
            if calls["n"] == stop_at:
                raise KeyboardInterrupt
            return real(ctx, spec, meter, epoch, on_step)

        monkeypatch.setattr(trainer, "train_epoch", flaky)
        assert runner.invoke(app, ["profile", str(broken), "--quiet"]).exit_code == 130
    monkeypatch.setattr(trainer, "train_epoch", real)
    assert runner.invoke(app, ["profile", str(broken), "--quiet"]).exit_code == 0
    (a,) = load_sweep(tmp_path / "a" / "runs" / "tiny")
    (b,) = load_sweep(tmp_path / "b" / "runs" / "tiny")
    columns = ["train_loss", "val_loss", "accuracy", "flops_forward", "flops_backward"]
    pd.testing.assert_frame_equal(a.epochs[columns], b.epochs[columns])
    pd.testing.assert_frame_equal(
        pd.read_csv(a.path / "gates.csv"), pd.read_csv(b.path / "gates.csv")
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"target_keep": 0}, "methods[0].target_keep: must be in (0, 1], got 0.0"),
        ({"level": "layer"}, "methods[0].level"),
        ({"prune_at_epoch": 4}, "prune_at_epoch: 4 must be below train.epochs (4)"),
        ({"weight": 0}, "methods[0].weight"),
    ],
)
def test_bad_gated_settings_are_one_line(tmp_path: Path, entry: dict, message: str) -> None:
    config = _config(tmp_path, [{**GATED, **entry}])
    result = runner.invoke(app, ["profile", str(config), "--quiet"])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_gates_pruned_far_from_their_target_are_noted_and_flagged(tmp_path: Path) -> None:
    early = {"name": "gated", "target_keep": 0.25, "prune_at_epoch": 1}
    config = write_config(tmp_path, model=MODEL, train={"epochs": 2, "lr": 1e-4}, methods=[early])
    result = runner.invoke(app, ["profile", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    gates = pd.read_csv(run.path / "gates.csv")
    far = gates[gates["distance"] > 0.05]
    assert len(far) and len(run.meta.method_notes) == len(far)
    for layer, note in zip(far["layer"], run.meta.method_notes, strict=True):
        assert layer in note and "train the gates longer" in note
    report = sweep_report(tmp_path / "runs" / "tiny")
    assert report is not None
    flagged = [f for f in report.flags if f.startswith("method: ")]
    assert flagged and all(layer in flagged[0] for layer in far["layer"])
