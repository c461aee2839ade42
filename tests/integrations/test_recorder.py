"""RunRecorder: a loop of one's own stored like a profile run, compared by the report, and
never stopped by a metering fault."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ssprop_energy import RunRecorder
from ssprop_energy.cli import app
from ssprop_energy.errors import UserError
from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.profilers.rapl import RaplSource
from ssprop_energy.store import LOCK, EnergyMeta, load_run, load_sweep
from tests.support.integration_loops import ENERGY, FLOP_COLUMNS, context, example, plain_loop
from tests.support.profiler_fakes import write_zone


def _run_of(profiled: Path, method: str) -> Path:
    (record,) = [r for r in load_sweep(profiled) if r.meta.method == method]
    return record.path


def _record(tmp_path: Path, method: str, **options: object) -> Path:
    spec, ctx = context(tmp_path, method)
    scheduler = getattr(ctx.method, "scheduler", None)
    options = {"energy": ENERGY, **options}
    with RunRecorder(
        tmp_path / "recorded", "loop", f"own {method}", spec.seed, model=ctx.model,
        example_input=example(spec, ctx), scheduler=scheduler, **options,  # type: ignore[arg-type]
    ) as rec:  # fmt: skip
        plain_loop(spec, ctx, rec)
    return rec.run_dir


@pytest.fixture(scope="module")
def recorded_dir(tmp_path_factory: pytest.TempPathFactory, profiled: Path) -> Path:
    """The ssProp run trained by a plain loop, recorded under the profile's dense run."""
    folder = tmp_path_factory.mktemp("recorder")
    return _record(folder, "ssprop", compare_with=_run_of(profiled, "dense"))


def test_rows_equal_the_profile_runs_flop_columns(recorded_dir: Path, profiled: Path) -> None:
    recorded = load_run(recorded_dir)
    stored = load_run(_run_of(profiled, "ssprop"))
    assert recorded.status == "finished" and recorded.meta.notes == []
    assert recorded.epochs[FLOP_COLUMNS].equals(stored.epochs[FLOP_COLUMNS])
    assert recorded.meta.flops_per_step == stored.meta.flops_per_step
    assert recorded.meta.mean_keep_planned == stored.meta.mean_keep_planned == 0.5
    assert not (recorded.path / LOCK).exists() and not list(recorded.path.glob(".*"))
    # the same seed, model, data and loop: the same training
    assert recorded.epochs["train_loss"].tolist() == pytest.approx(
        stored.epochs["train_loss"].tolist(), rel=1e-5
    )


def test_the_report_compares_a_recorded_run_with_a_profile_run(
    tmp_path: Path, profiled: Path, recorded_dir: Path
) -> None:
    run_dir = recorded_dir
    out = tmp_path / "report"
    args = ["report", str(profiled), str(run_dir.parent), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    row = summary[summary["method_label"] == "own ssprop"].iloc[0]
    assert row["comparison_note"] == "compared"
    assert row["baseline_run"].startswith("dense")
    assert row["flops_backward_saving_pct"] > 0
    assert (out / "report.html").is_file()


def test_compare_with_a_run_of_another_model_is_refused(tmp_path: Path, profiled: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(UserError, match=r"compare_with: .*not the same model and batch"):
        RunRecorder(tmp_path, "s", "x", 0, model=model, example_input=torch.randn(16, 1, 8, 8),
                    compare_with=_run_of(profiled, "dense"))  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sweep": "../up"}, "sweep: must be a folder name"),
        ({"example_input": "x"}, "example_input: expected one batch as a tensor"),
        ({"example_input": torch.randn(4, 5)}, "example_input: inputs: shape 4x5 does not fit"),
        ({"energy": {"interval_s": 0}}, "energy: interval_s: "),
        ({"epochs": 0}, "epochs: must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_one_user_error(kwargs: dict, message: str) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    args = {"sweep": "s", "example_input": torch.randn(4, 1, 8, 8), **kwargs}
    with pytest.raises(UserError, match=message):
        RunRecorder("runs", args.pop("sweep"), "x", 0, model=model, **args)


def test_an_unknown_phase_is_a_user_error(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 2)
    recorder = RunRecorder(
        tmp_path, "s", "x", 0, model=model, example_input=torch.randn(2, 4), energy=ENERGY
    )
    with recorder as rec, pytest.raises(UserError, match="phase: 'fwd' is not one of"):
        rec.begin_phase("fwd")


def _failing_meter(tmp_path: Path) -> EnergyMeter:
    """A RAPL package whose counter fails after its first readings (a source going bad)."""
    root = tmp_path / "powercap"
    write_zone(root, "intel-rapl:0", "package-0", 1_000_000)
    return EnergyMeter(gpus=None, cpu="rapl", codecarbon=False, powercap_root=root,
                       interval_s=0.05)  # fmt: skip


def test_a_fault_in_a_source_does_not_stop_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [0]
    real = RaplSource.energy_j

    def energy_j(self: RaplSource) -> float:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError("powercap went away")
        return real(self)

    monkeypatch.setattr(RaplSource, "energy_j", energy_j)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run_dir = _record(tmp_path, "dense", meter=_failing_meter(tmp_path))
    run = load_run(run_dir)
    assert run.status == "finished" and len(run.epochs) == 2
    assert "powercap went away" in " ".join(run.meta.notes)
    assert set(run.epochs["provenance_cpu"]) == {"unavailable"}
    assert run.epochs["flops_total"].gt(0).all()


def test_a_meter_that_raises_does_not_stop_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: EnergyMeter, name: str) -> None:
        raise RuntimeError("sampler thread died")

    monkeypatch.setattr(EnergyMeter, "begin", broken)
    with pytest.warns(RuntimeWarning, match="sampler thread died"):
        run_dir = _record(tmp_path, "dense")
    run = load_run(run_dir)
    assert run.status == "finished" and len(run.epochs) == 2
    assert run.meta.notes == ["energy meter: RuntimeError: sampler thread died"]
    assert run.note == "energy meter: RuntimeError: sampler thread died"
    assert run.epochs["time_s_backward"].gt(0).all()
    assert run.epochs["energy_j"].isna().all()


def test_a_meter_that_cannot_start_leaves_a_run_without_energy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: EnergyMeter) -> None:
        raise OSError("no sources")

    monkeypatch.setattr(EnergyMeter, "start", broken)
    with pytest.warns(RuntimeWarning, match="no sources"):
        run_dir = _record(tmp_path, "dense")
    run = load_run(run_dir)
    assert run.status == "finished" and run.meta.energy == EnergyMeta()
    assert run.epochs["energy_j"].isna().all() and run.epochs["steps"].tolist() == [4, 4]


def test_an_exception_in_the_loop_marks_the_run_failed_and_propagates(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 2)
    with (
        pytest.raises(ZeroDivisionError),
        RunRecorder(
            tmp_path, "s", "x", 0, model=model, example_input=torch.randn(2, 4), energy=ENERGY
        ) as rec,
    ):
        with rec.phase("forward"):
            model(torch.randn(2, 4))
        rec.end_step(1.0)
        rec.end_epoch()
        1 / 0  # noqa: B018
    meta = json.loads((rec.run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["error"].startswith("ZeroDivisionError")
    assert meta["epochs_done"] == 1 and not (rec.run_dir / LOCK).exists()


def test_a_nan_loss_marks_the_run_diverged_without_stopping_it(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 2)
    with RunRecorder(tmp_path, "s", "x", 0, model=model, example_input=torch.randn(2, 4),
                     energy=ENERGY) as rec:  # fmt: skip
        for loss in (1.0, float("nan"), 2.0):
            with rec.phase("forward"):
                model(torch.randn(2, 4))
            rec.end_step(loss)
    run = load_run(rec.run_dir)
    assert run.status == "diverged" and "loss became nan at epoch 0, step 1" in run.meta.error
    assert run.epochs["steps"].tolist() == [3]
