"""The inference cost of a final model: exact figures under a fake meter, the stored file,
resume of a run interrupted while measuring it, and its config section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.data import Dataset
from ssprop_energy.errors import UserError
from ssprop_energy.flops import count_flops
from ssprop_energy.harness.config import load_config, parse_config
from ssprop_energy.harness.run import trainer
from ssprop_energy.harness.run.inference import measure_inference
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.harness.sweep.runner import run_sweep
from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.profilers.rapl import RaplSource
from ssprop_energy.store import INFERENCE, load_sweep
from tests.support.harness_configs import tiny_config, write_config
from tests.support.profiler_fakes import write_zone

JOULES_PER_WINDOW = 0.5


class Recorder(nn.Module):
    """A tiny CNN that records the mode and grad state of every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        return self.body(x)


@pytest.fixture(autouse=True)
def _any_window_is_long_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake counter is exact for any window; the real RAPL update period (1 ms) would make
    a window of a few fast batches too short to be ``measured``."""
    monkeypatch.setattr(RaplSource, "resolution_s", 0.0)


def _data(val: int) -> Dataset:
    x = torch.randn(val, 1, 8, 8)
    y = torch.zeros(val, dtype=torch.long)
    return Dataset(x, y, x, y, classes=3)


def _meter(tmp_path: Path) -> EnergyMeter:
    """A RAPL package whose counter gains JOULES_PER_WINDOW at every window: each window's
    energy is exact, whatever its duration."""
    zone = write_zone(tmp_path / "powercap", "intel-rapl:0", "package-0", 0)
    energy = [0]

    def bump() -> None:
        energy[0] += round(JOULES_PER_WINDOW * 1e6)  # a window reads after its edges' bumps
        (zone / "energy_uj").write_text(f"{energy[0]}\n")

    return EnergyMeter(
        gpus=None, cpu="rapl", codecarbon=False, powercap_root=zone.parent, sync=bump
    )


def test_figures_per_1000_samples_are_exact_under_a_fake_meter(tmp_path: Path) -> None:
    model = Recorder().train()
    with _meter(tmp_path) as meter:
        table = measure_inference(model, _data(40), torch.device("cpu"), [1, 16], 100, meter=meter)
    assert list(table.columns) == [
        "batch_size",
        "samples",
        "batches",
        "params",
        "flops_forward_per_sample",
        "latency_ms",
        "time_s_per_1000",
        "energy_j_per_1000",
        "provenance",
        "energy_j_per_1000_cpu",
        "provenance_cpu",
        "energy_j_per_1000_dram",
        "provenance_dram",
    ]
    rows = table.set_index("batch_size")
    assert rows["batches"].tolist() == [100, 7]  # 7 full batches of 16 cover 100 samples
    assert rows["samples"].tolist() == [100, 112]
    assert rows.loc[1, "energy_j_per_1000"] == pytest.approx(JOULES_PER_WINDOW * 1000 / 100)
    assert rows.loc[16, "energy_j_per_1000"] == pytest.approx(JOULES_PER_WINDOW * 1000 / 112)
    assert (rows["energy_j_per_1000_cpu"] == rows["energy_j_per_1000"]).all()
    assert rows["energy_j_per_1000_dram"].isna().all()  # no DRAM zone: no figure, never 0 J
    assert (rows["provenance_dram"] == "unavailable").all()
    assert (rows["provenance"] == "measured").all() and (rows["provenance_cpu"] == "measured").all()
    assert rows["latency_ms"].tolist() == pytest.approx(
        (rows["time_s_per_1000"] * rows.index).tolist()
    )
    assert (rows["params"] == sum(p.numel() for p in model.parameters())).all()
    flops = count_flops(model, (1, 1, 8, 8)).forward
    assert flops > 0 and (rows["flops_forward_per_sample"] == flops).all()
    warm_up = 3 + 3
    assert len([s for s in model.seen if s == (False, False)]) == 100 + 7 + warm_up
    assert model.training  # its mode is restored


def test_a_validation_set_smaller_than_a_batch_is_cycled(tmp_path: Path) -> None:
    model = Recorder()
    with _meter(tmp_path) as meter:
        table = measure_inference(model, _data(5), torch.device("cpu"), [8], 20, meter=meter)
    assert table["batches"].tolist() == [3] and table["samples"].tolist() == [24]


def test_a_source_without_figures_is_empty_and_unavailable(tmp_path: Path) -> None:
    meter = EnergyMeter(gpus=None, cpu="rapl", codecarbon=False, powercap_root=tmp_path)
    with meter:
        table = measure_inference(Recorder(), _data(8), torch.device("cpu"), [1], 4, meter=meter)
    assert table["energy_j_per_1000"].isna().all()
    assert table["provenance"].eq("unavailable").all()


def test_every_finished_run_stores_its_final_models_inference_cost(tmp_path: Path) -> None:
    cfg = parse_config(tiny_config(tmp_path, inference={"samples": 48}))
    run_sweep(cfg)
    runs = load_sweep(tmp_path / "runs" / "tiny")
    for run in runs:
        assert run.status == "finished"
        assert run.inference["batch_size"].tolist() == [1, 16]  # batch 1 and data.batch_size
        assert run.inference["samples"].tolist() == [48, 48]
        assert run.inference["time_s_per_1000"].gt(0).all()
    dense, sparse = (r.inference["flops_forward_per_sample"].iloc[0] for r in runs)
    assert dense == sparse  # ssProp's final model runs the same forward pass


def test_inference_is_off_when_disabled_and_never_changes_run_ids(tmp_path: Path) -> None:
    on = parse_config(tiny_config(tmp_path))
    off = parse_config(tiny_config(tmp_path, inference={"enabled": False, "samples": 7}))
    assert [r.run_id for r in plan_runs(on)] == [r.run_id for r in plan_runs(off)]
    run_sweep(off)
    assert not list((tmp_path / "runs" / "tiny").glob(f"*/{INFERENCE}"))


@pytest.mark.parametrize(
    ("stop_at_target", "error", "status"),
    [
        (False, KeyboardInterrupt, "interrupted"),
        (True, KeyboardInterrupt, "interrupted"),
        (False, RuntimeError, "failed"),
    ],
)
def test_a_run_stopped_while_measuring_inference_resumes_without_training(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop_at_target: bool,
    error: type[BaseException],
    status: str,
) -> None:
    overrides = {"target_accuracy": 0.01, "stop_at_target": True} if stop_at_target else {}
    cfg = parse_config(
        tiny_config(tmp_path, methods=[{"name": "dense"}], inference={"samples": 16}, **overrides)
    )

    def stop(*args: object, **kwargs: object) -> pd.DataFrame:
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "measure_inference", stop)
        run_sweep(cfg)
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert run.status == status and run.inference.empty
    assert (run.path / "checkpoint.pt").is_file()
    trained = run.epochs
    assert len(trained) == (1 if stop_at_target else 2)
    steps: list[object] = []
    monkeypatch.setattr(trainer, "train_epoch", lambda *a, **k: steps.append(a))
    run_sweep(cfg)
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert steps == []  # nothing trained again
    assert run.status == "finished" and run.meta.stopped_at_target is stop_at_target
    pd.testing.assert_frame_equal(run.epochs, trained)
    assert run.inference["batch_size"].tolist() == [1, 16]
    assert not (run.path / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"batch_sizes": [1, 0]},
            "inference.batch_sizes[1]: must be a positive integer or 'train'",
        ),
        ({"batch_sizes": ["big"]}, "inference.batch_sizes[0]: must be a positive integer"),
        ({"samples": 0}, "inference.samples: Input should be greater than or equal to 1"),
        ({"every": 2}, "inference.every: unknown field"),
    ],
)
def test_bad_inference_sections_are_one_line(tmp_path: Path, section: dict, message: str) -> None:
    path = write_config(tmp_path, inference=section)
    with pytest.raises(UserError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_profile_command_reports_training_and_inference_side_by_side(tmp_path: Path) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}])
    result = CliRunner().invoke(app, ["profile", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    sweep = tmp_path / "runs" / "tiny"
    assert pd.read_csv(sweep / INFERENCE)["batch_size"].tolist() == [1, 16]
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["inference_latency_ms_btrain"].gt(0).all()
    assert "side by side" in (sweep / "report.html").read_text(encoding="utf-8")
