"""The profile command end to end on a tiny synthetic config, resume, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.harness.run import trainer
from ssprop_energy.store import load_sweep
from tests.support.harness_configs import write_config

runner = CliRunner()


def _profile(*args: str) -> object:
    return runner.invoke(app, ["profile", *args])


def test_end_to_end_and_rerun_skips_finished_runs(tmp_path: Path) -> None:
    config = write_config(tmp_path, energy={"codecarbon": True, "idle_s": 0.2})
    result = _profile(str(config))
    assert result.exit_code == 0, result.output
    sweep = tmp_path / "runs" / "tiny"
    runs = load_sweep(sweep)
    assert [r.status for r in runs] == ["finished", "finished"]
    for record in runs:
        assert len(record.epochs) == 2
        assert record.epochs["flops_backward"].gt(0).all()
        assert record.epochs["provenance_cpu"].eq("estimated").all()
        assert record.epochs["energy_j_cpu"].gt(0).all()
        assert record.meta.energy.sources["cpu"].provenance == "estimated"
        assert {"time_s", "source", "power_w"} <= set(record.power.columns)
        for phase in ("data", "forward", "backward", "optimizer", "eval"):
            assert record.epochs[f"time_s_{phase}"].gt(0).all()
    sparse = next(r for r in runs if r.meta.method == "ssprop")
    assert sparse.epochs["keep"].tolist() == [1.0, 0.5]
    assert sparse.epochs["flops_backward"].iloc[1] < sparse.epochs["flops_backward_dense"].iloc[1]
    for name in ("config.yaml", "summary.csv", "report.html"):
        assert (sweep / name).is_file()
    assert "report:" in result.output
    again = _profile(str(config))
    assert again.exit_code == 0 and "skipped" in again.output
    assert [r.meta.finished_at for r in load_sweep(sweep)] == [r.meta.finished_at for r in runs]


def test_dry_run_prints_matrix_without_training(config_file: Path, tmp_path: Path) -> None:
    result = _profile(str(config_file), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 runs" in result.output and not (tmp_path / "runs").exists()


def test_interrupt_then_resume_keeps_epochs_and_redoes_nothing(tmp_path, monkeypatch) -> None:
    config = write_config(tmp_path, train={"epochs": 3})
    real = trainer.train_epoch
    calls = {"n": 0}

    def flaky(ctx, spec, meter, epoch, on_step=None):  # second run, third epoch: Ctrl-C
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(ctx, spec, meter, epoch, on_step)

    monkeypatch.setattr(trainer, "train_epoch", flaky)
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 130
    sweep = tmp_path / "runs" / "tiny"
    by_status = {r.status: r for r in load_sweep(sweep)}
    assert set(by_status) == {"finished", "interrupted"}
    kept = by_status["interrupted"].epochs.copy()
    assert len(kept) == 2
    finished_at = by_status["finished"].meta.finished_at
    monkeypatch.setattr(trainer, "train_epoch", real)
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 0, result.output
    resumed = {r.run_id: r for r in load_sweep(sweep)}
    done = resumed[by_status["interrupted"].run_id]
    assert done.status == "finished" and done.epochs["epoch"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(done.epochs.iloc[:2], kept, check_dtype=False)
    assert resumed[by_status["finished"].run_id].meta.finished_at == finished_at


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch) -> None:
    straight = write_config(tmp_path / "a", train={"epochs": 3}, methods=[{"name": "dense"}])
    assert _profile(str(straight), "--quiet").exit_code == 0
    broken = write_config(tmp_path / "b", train={"epochs": 3}, methods=[{"name": "dense"}])
    real = trainer.train_epoch
    calls = {"n": 0}

    def flaky(ctx, spec, meter, epoch, on_step=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(ctx, spec, meter, epoch, on_step)

    monkeypatch.setattr(trainer, "train_epoch", flaky)
    assert _profile(str(broken), "--quiet").exit_code == 130
    monkeypatch.setattr(trainer, "train_epoch", real)
    assert _profile(str(broken), "--quiet").exit_code == 0
    a = load_sweep(tmp_path / "a" / "runs" / "tiny")[0].epochs
    b = load_sweep(tmp_path / "b" / "runs" / "tiny")[0].epochs
    assert a["train_loss"].tolist() == b["train_loss"].tolist()
    assert a["accuracy"].tolist() == b["accuracy"].tolist()


def test_determinism_under_a_seed(tmp_path: Path) -> None:
    losses = []
    for sub in ("one", "two"):
        config = write_config(tmp_path / sub)
        assert _profile(str(config), "--quiet").exit_code == 0
        runs = load_sweep(tmp_path / sub / "runs" / "tiny")
        losses.append(
            [r.epochs[["train_loss", "val_loss", "accuracy"]].values.tolist() for r in runs]
        )
    assert losses[0] == losses[1]


def test_only_and_max_runs(config_file: Path, tmp_path: Path, monkeypatch) -> None:
    assert _profile(str(config_file), "--quiet", "--max-runs", "1").exit_code == 0
    sweep = tmp_path / "runs" / "tiny"
    (first,) = load_sweep(sweep)
    marker = first.path / "left-by-the-first-run"
    marker.touch()
    trained: list[int] = []
    real = trainer.train_epoch

    def counted(ctx, spec, meter, epoch, on_step=None):
        trained.append(epoch)
        return real(ctx, spec, meter, epoch, on_step)

    monkeypatch.setattr(trainer, "train_epoch", counted)
    result = _profile(str(config_file), "--quiet", "--only", first.run_id[:6])
    assert result.exit_code == 0
    (again,) = load_sweep(sweep)
    assert trained == [0, 1] and again.run_id == first.run_id  # redone from scratch
    assert not marker.exists() and again.status == "finished" and len(again.epochs) == 2
    bad = _profile(str(config_file), "--only", "zzzz")
    assert bad.exit_code == 2 and "--only" in bad.output


def test_nan_loss_marks_diverged_and_the_sweep_goes_on(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "nanmodels.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Nan(nn.Module):\n"
        "    def __init__(self, in_channels=1, num_classes=3):\n"
        "        super().__init__(); self.fc = nn.Linear(in_channels * 64, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1)) * float('nan')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(
        tmp_path,
        model={"name": None, "factory": "nanmodels:Nan", "kwargs": {}},
        methods=[{"name": "dense"}, {"name": "ssprop", "layers": ["Linear"]}],
    )
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 0, result.output
    runs = load_sweep(tmp_path / "runs" / "tiny")
    assert [r.status for r in runs] == ["diverged", "diverged"]
    assert "loss became nan" in runs[0].meta.error


def test_stop_at_target(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        target_accuracy=0.01,
        stop_at_target=True,
        methods=[{"name": "dense"}],
        train={"epochs": 4},
    )
    assert _profile(str(config), "--quiet").exit_code == 0
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert len(run.epochs) == 1
    assert run.meta.target_status == "reached" and run.meta.stopped_at_target is True
    assert run.status == "finished"


def test_target_not_reached_is_marked(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        target_accuracy=1.0,
        stop_at_target=True,
        methods=[{"name": "dense"}],
        train={"epochs": 2},
    )
    assert _profile(str(config), "--quiet").exit_code == 0
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert len(run.epochs) == 2 and run.meta.target_status == "not_reached"


def test_save_weights_init_from_and_freeze(tmp_path: Path) -> None:
    pre = write_config(tmp_path / "pre", save_weights=True, methods=[{"name": "dense"}])
    assert _profile(str(pre), "--quiet").exit_code == 0
    (run,) = load_sweep(tmp_path / "pre" / "runs" / "tiny")
    weights = run.path / "weights.pt"
    assert weights.is_file() and not (run.path / "checkpoint.pt").exists()
    fine = write_config(
        tmp_path / "fine",
        methods=[{"name": "dense"}],
        train={"init_from": str(weights), "freeze": ["features.0"]},
    )
    assert _profile(str(fine), "--quiet").exit_code == 0
    bad = write_config(
        tmp_path / "bad", methods=[{"name": "dense"}], train={"freeze": ["nothing.*"]}
    )
    result = _profile(str(bad), "--quiet")
    assert result.exit_code == 2 and "train.freeze" in result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": {"name": "vgg99"}}, "model.name: unknown model"),
        ({"data": {"name": "npz", "path": "missing.npz"}}, "data.path: no such file"),
        ({"methods": [{"name": "ssprop", "keep": 0}]}, "methods[0].keep"),
    ],
)
def test_bad_configs_exit_2_with_one_line(tmp_path: Path, overrides: dict, message: str) -> None:
    result = _profile(str(write_config(tmp_path, **overrides)))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_read_only_output_folder_loses_nothing(tmp_path: Path, monkeypatch) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}])
    assert _profile(str(config), "--quiet").exit_code == 0
    sweep = tmp_path / "runs" / "tiny"
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # root ignores chmod: fake the OS
    result = _profile(str(config), "--quiet", "--only", load_sweep(sweep)[0].run_id)
    assert result.exit_code == 2
    assert "cannot write results here (Permission denied)" in result.output
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before
    assert json.loads((sweep / load_sweep(sweep)[0].run_id / "meta.json").read_text())


def test_only_puts_the_old_run_back_when_the_rerun_hits_bad_input(tmp_path, monkeypatch) -> None:
    from ssprop_energy.errors import UserError
    from ssprop_energy.harness.sweep import runner as runner_module

    config = write_config(tmp_path, methods=[{"name": "dense"}])
    assert _profile(str(config), "--quiet").exit_code == 0
    sweep = tmp_path / "runs" / "tiny"
    (run,) = load_sweep(sweep)
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}

    def bad_input(spec, run_dir, *callbacks):
        assert sorted(p.name for p in run_dir.iterdir()) == ["run.lock"]  # the old run is aside
        (run_dir / "meta.json").write_text("{}")
        raise UserError("train.init_from: x.pt: does not fit the model")

    monkeypatch.setattr(runner_module, "run_training", bad_input)
    result = _profile(str(config), "--quiet", "--only", run.run_id)
    assert result.exit_code == 2 and "train.init_from" in result.output
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before
    assert {p.name for p in sweep.iterdir() if p.is_dir()} == {run.run_id, "figures"}


def test_no_energy_source_leaves_energy_empty_not_zero(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        methods=[{"name": "dense"}],
        energy={"gpus": None, "cpu": None, "codecarbon": False, "idle_s": 0},
    )
    result = _profile(str(config))
    assert result.exit_code == 0, result.output
    assert "energy unavailable" in result.output and "nan" not in result.output.lower()
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert run.epochs["energy_j"].isna().all() and run.epochs["emissions_kg"].isna().all()
    assert run.epochs["energy_j_backward"].isna().all()


def test_steps_report_the_running_mean_power(tmp_path: Path) -> None:
    from ssprop_energy.harness.config import load_config
    from ssprop_energy.harness.runs import plan_runs

    config = write_config(tmp_path, methods=[{"name": "dense"}], energy={"codecarbon": True})
    (spec,) = plan_runs(load_config(config))
    seen: list[trainer.StepInfo] = []
    trainer.run_training(spec, tmp_path / "run", on_step=seen.append)
    assert len(seen) == 2 * 4 and [i.step for i in seen[:4]] == [0, 1, 2, 3]
    assert all(i.watts is not None and i.watts > 0 for i in seen)


def test_pretraining_run_feeds_a_fine_tuning_run_in_the_same_sweep(tmp_path: Path) -> None:
    import torch

    config = write_config(
        tmp_path,
        seeds=[0, 1],
        save_weights=True,
        methods=[
            {"name": "dense", "label": "pretrain"},
            {"name": "ssprop", "keep": 0.5, "init_from": "pretrain", "freeze": ["features.0"]},
        ],
    )
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 0, result.output
    runs = {(r.meta.method_label, r.meta.seed): r for r in load_sweep(tmp_path / "runs" / "tiny")}
    assert set(runs) == {(label, seed) for label in ("pretrain", "ssprop keep=0.5 from pretrain")
                         for seed in (0, 1)}  # fmt: skip
    for seed in (0, 1):
        pre, fine = runs["pretrain", seed], runs["ssprop keep=0.5 from pretrain", seed]
        assert fine.status == "finished" and fine.meta.run_config["init_run"] == pre.run_id
        before = torch.load(pre.path / "weights.pt")["features.0.weight"]
        after = torch.load(fine.path / "weights.pt")
        assert torch.equal(after["features.0.weight"], before)  # frozen, from the pretrained run
        assert not torch.equal(after["fc.weight"], torch.load(pre.path / "weights.pt")["fc.weight"])


def test_fine_tuning_run_waits_for_its_pretraining_run(tmp_path: Path) -> None:
    from ssprop_energy.harness.config import load_config
    from ssprop_energy.harness.runs import plan_runs

    config = write_config(
        tmp_path,
        methods=[{"name": "dense", "label": "pre"}, {"name": "dense", "init_from": "pre"}],
    )
    pre, fine = plan_runs(load_config(config))
    assert pre.save_weights and not fine.save_weights  # the source run keeps its weights
    result = _profile(str(config), "--only", fine.run_id)
    assert result.exit_code == 0 and "not started: needs the final weights of run" in result.output
    assert not (tmp_path / "runs" / "tiny" / fine.run_id).exists()
