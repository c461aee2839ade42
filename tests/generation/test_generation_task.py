"""The generation task: DDPM loss, DDIM sampling, the fd_classifier score, exact resume, the
sample grids and scores in the report, and its config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.data import DataConfig
from ssprop_energy.errors import UserError
from ssprop_energy.harness.config import parse_config
from ssprop_energy.harness.run.trainer import run_training
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.models import build_model
from ssprop_energy.reports import build_report, write_report
from ssprop_energy.store import load_run
from ssprop_energy.tasks import Generation, GenerationConfig, fd_score
from ssprop_energy.tasks.diffusion import alpha_bars, ddim_sample
from ssprop_energy.tasks.fd_score import FeatureNet, Reference, reference, score, statistics

DETERMINISTIC = ["epoch", "train_loss", "val_denoise_loss", "fd_classifier", "flops_backward"]


def digits_npz(folder: Path, count: int = 320) -> Path:
    """The first ``count`` digits as an npz data set (a quarter of them for validation)."""
    digits = load_digits()
    path = folder / "digits.npz"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=digits.images[:count], y=digits.target[:count])
    return path


def tiny(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "npz",
        "path": str(digits_npz(tmp_path)),
        "image_size": 8,
        "batch_size": 64,
        "val_split": 0.25,
    }
    config: dict[str, Any] = {
        "name": "gen",
        "model": {"name": "unet", "kwargs": {"width": 4, "levels": 1}},
        "data": data,
        "task": {"name": "generation", "timesteps": 50, "sample_steps": 4, "samples": 32,
                 "grid_size": 16, "grid_epochs": [1, 2]},
        "train": {"epochs": 2, "optimizer": "adam", "lr": 0.01, "device": "cpu"},
        "methods": [{"name": "dense"}],
        "energy": {"codecarbon": False, "idle_s": 0, "interval_s": 0.05},
        "inference": {"enabled": False},
        "output": str(tmp_path / "runs"),
    }  # fmt: skip
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted tiny run (2 epochs, a grid after each)."""
    tmp = tmp_path_factory.mktemp("gen")
    (spec,) = plan_runs(parse_config(tiny(tmp)))
    run_dir = tmp / "sweep" / "straight"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fd_score, "CLASSIFIER_EPOCHS", 1)
        assert run_training(spec, run_dir).status == "finished"
    return run_dir


def test_the_denoising_loss_decreases_on_a_tiny_run(straight: Path) -> None:
    epochs = load_run(straight).epochs
    assert epochs["train_loss"].is_monotonic_decreasing
    assert epochs["val_denoise_loss"].iloc[-1] < epochs["val_denoise_loss"].iloc[0]
    assert epochs["fd_classifier"].notna().all() and (epochs["fd_classifier"] > 0).all()


def test_the_run_stores_its_sampling_cost_and_chosen_grids(straight: Path) -> None:
    record = load_run(straight)
    assert list(record.sample_grids()) == [0, 1]
    assert record.sample_grids()[1].read_bytes().startswith(b"\x89PNG")
    sampling = record.sampling
    assert sampling["epoch"].tolist() == [0, 1] and (sampling["samples"] == 32).all()
    # read back from CSV: equal to the last digits that older pandas parse exactly
    assert sampling["s_per_64"].tolist() == pytest.approx((sampling["time_s"] * 2).tolist())
    assert (sampling["provenance"] == "unavailable").all()  # no RAPL, no CodeCarbon here
    assert len(list((straight.parent / "fd-classifier").glob("*.pt"))) == 1


def test_an_interrupted_run_resumes_exactly(straight: Path) -> None:
    (spec,) = plan_runs(parse_config(tiny(straight.parent.parent)))
    run_dir = straight.parent / "resumed"

    def stop_after_first(row: dict[str, Any]) -> None:
        if row["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(spec, run_dir, on_epoch=stop_after_first)
    assert load_run(run_dir).status == "interrupted"
    assert run_training(spec, run_dir).status == "finished"
    resumed, expected = load_run(run_dir), load_run(straight)
    pd.testing.assert_frame_equal(resumed.epochs[DETERMINISTIC], expected.epochs[DETERMINISTIC])
    for epoch, path in expected.sample_grids().items():
        assert resumed.sample_grids()[epoch].read_bytes() == path.read_bytes()


def test_the_report_shows_the_grids_inline_with_the_scores(straight: Path, tmp_path: Path) -> None:
    report = build_report([straight])
    assert report.grids["epoch"].tolist() == [1]
    assert not report.sampling.empty
    written = write_report(report, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.count('src="data:image/png;base64,iVBOR') == 1
    assert "not Inception FID" in page and "val_denoise_loss" in page
    assert tmp_path / "sampling.csv" in written and tmp_path / "figures/generation.svg" in written


def test_sampling_is_deterministic_under_a_seed() -> None:
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, width=4, levels=1, time_input=True).eval()
    abar = alpha_bars(50, "cosine")

    def draw(seed: int, eta: float) -> torch.Tensor:
        cpu = torch.device("cpu")
        return ddim_sample(model, (6, 1, 8, 8), abar, 5, seed, cpu, batch_size=4, eta=eta)

    for eta in (0.0, 1.0):
        first = draw(3, eta)
        torch.rand(10)  # the global RNG does not matter
        assert torch.equal(first, draw(3, eta))
        assert not torch.equal(first, draw(4, eta))
        assert first.abs().max() <= 1
    assert not torch.equal(draw(3, 0.0), draw(3, 1.0))


def test_the_score_is_zero_for_identical_sets_and_grows_with_noise() -> None:
    torch.manual_seed(0)
    net = FeatureNet(1, 10)
    images = torch.rand(200, 1, 8, 8) * 2 - 1
    ref = Reference(net, 0.0, *statistics(net.features(images)))
    assert score(ref, images) == pytest.approx(0.0, abs=1e-9)
    noised = [score(ref, images + s * torch.randn_like(images)) for s in (0.1, 0.5, 1.0)]
    assert 0 < noised[0] < noised[1] < noised[2]


def test_the_classifier_is_trained_once_per_data_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fd_score, "CLASSIFIER_EPOCHS", 1)
    task = Generation(GenerationConfig())
    data = task.build_data(DataConfig(image_size=8, val_split=0.9))
    assert data.x_train.min() == -1 and data.x_train.max() == 1
    first = reference(data, tmp_path)
    (cached,) = tmp_path.glob("*.pt")
    again = reference(data, tmp_path)
    np.testing.assert_array_equal(first.mean, again.mean)
    assert again.accuracy == first.accuracy and list(tmp_path.glob("*.pt")) == [cached]
    other = task.build_data(DataConfig(image_size=8, val_split=0.9, seed=1))
    reference(other, tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_generation_data_defaults_to_32_px(tmp_path: Path) -> None:
    cfg = parse_config(tiny(tmp_path, data={"name": "digits"}))
    assert cfg.data.image_size == 32


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": {"name": "digits", "samples": 100}}, "data.samples: only the synthetic"),
        ({"data": {"name": "digits", "classes": 3}}, "data.classes: only the synthetic"),
        ({"data": {"name": "synthetic"}}, "data.name: the generation task learns real images"),
        ({"target_accuracy": 0.5}, "target_accuracy: the generation task has no accuracy"),
        ({"task": {"name": "generation", "lr": 1}}, "task.lr: unknown field"),
        ({"task": {"name": "generation", "timesteps": 10, "sample_steps": 20}},
         "task.sample_steps: at most timesteps (10), got 20"),
        ({"task": {"name": "generation", "grid_epochs": [0]}}, "task.grid_epochs: epochs count"),
        ({"task": {"name": "classification", "timesteps": 100}}, "task.timesteps: unknown field"),
        ({"task": {"name": "classification"}}, "model: 'unet' is a model for the 'generation'"),
    ],
)  # fmt: skip
def test_options_of_the_other_task_are_one_line_errors(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError) as caught:
        parse_config(tiny(tmp_path, **overrides), "gen.yaml")
    text = str(caught.value)
    assert text.startswith(f"gen.yaml: {message}") and "\n" not in text


def test_a_launch_on_many_processes_is_refused_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump(tiny(tmp_path)))
    result = CliRunner().invoke(app, ["profile", str(config), "--nproc-per-node", "2", "-q"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: task.name: generation is not available for runs on many processes "
        "(--nproc-per-node, torchrun); train it on one process"
    )
    assert not (tmp_path / "runs").exists()


def test_the_report_judges_generation_runs_by_the_denoising_loss(
    straight: Path, tmp_path: Path
) -> None:
    sparse = tmp_path / "sparse"
    shutil.copytree(straight, sparse)
    meta = json.loads((sparse / "meta.json").read_text())
    meta.update(run_id="sparse", method="ssprop", method_label="ssprop keep=0.5")
    (sparse / "meta.json").write_text(json.dumps(meta))
    epochs = pd.read_csv(sparse / "epochs.csv")
    epochs["val_denoise_loss"] *= 1.1
    epochs.to_csv(sparse / "epochs.csv", index=False)
    report = build_report([straight, sparse])
    assert "; val_denoise_loss +10.0% (lower is better); 1 seed" in report.headline
    assert "accuracy" not in report.headline
    runs = report.runs.set_index("method")
    assert runs.loc["ssprop", "primary_change_pct"] == pytest.approx(10.0)
    assert runs.loc["ssprop", "final_primary"] == pytest.approx(epochs["val_denoise_loss"].iloc[-1])
    assert runs.loc["ssprop", "best_primary"] == pytest.approx(epochs["val_denoise_loss"].min())
    assert set(runs["primary_metric"]) == {"val_denoise_loss"}
    write_report(report, tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<th>final_primary</th>" in page and "<th>final_accuracy</th>" not in page
