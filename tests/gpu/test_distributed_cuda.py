"""torchrun on CUDA (NCCL): one rank gives the energy per epoch of a plain run; two ranks meter
their own GPUs. Written without a GPU at hand: these run only where CUDA is (marker gpu)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.store import load_sweep, rank_folder
from tests.support.harness_configs import write_config

pytestmark = pytest.mark.gpu
runner = CliRunner()


def _config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        model={"name": "resnet18", "kwargs": {"width": 32}},
        data={"image_size": 32, "channels": 3, "samples": 4096, "batch_size": 128},
        train={"device": "cuda", "epochs": 4},
        methods=[{"name": "dense"}],
        energy={"gpus": "auto", "cpu": "auto", "codecarbon": False, "interval_s": 0.05},
        inference={"enabled": False},
    )


def test_one_gpu_torchrun_gives_the_plain_runs_energy_per_epoch(tmp_path: Path) -> None:
    config = _config(tmp_path)
    plain = runner.invoke(app, ["profile", str(config), "--out", str(tmp_path / "plain"), "-q"])
    assert plain.exit_code == 0, plain.output
    ranked = runner.invoke(
        app,
        ["profile", str(config), "--out", str(tmp_path / "ddp"), "--nproc-per-node", "1", "-q"],
    )
    assert ranked.exit_code == 0, ranked.output
    (a,) = load_sweep(tmp_path / "plain" / "tiny")
    (b,) = load_sweep(tmp_path / "ddp" / "tiny")
    assert b.meta.distributed.backend == "nccl"
    # the first epoch pays start-up costs: compare the later ones
    energy_a = a.epochs["energy_j_gpu0"].iloc[1:].mean()
    energy_b = b.epochs["energy_j_gpu0"].iloc[1:].mean()
    assert abs(energy_b / energy_a - 1) < 0.05, (energy_a, energy_b)
    assert (rank_folder(b.path, 0) / "epochs.csv").is_file()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_each_rank_meters_its_own(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = runner.invoke(app, ["profile", str(config), "--nproc-per-node", "2", "-q"])
    assert result.exit_code == 0, result.output
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert {"gpu0", "gpu1"} <= set(run.meta.energy.sources)
    sources = run.meta.energy.sources
    total = sum(run.epochs[f"energy_j_{s}"].fillna(0) for s in sources)
    assert run.epochs["energy_j"].tolist() == pytest.approx(total.tolist())
    for rank in (0, 1):
        rows = run.ranks[run.ranks["rank"] == rank]
        assert rows[f"energy_j_gpu{rank}"].gt(0).all()
