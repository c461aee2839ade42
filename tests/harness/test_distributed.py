"""One run on two processes (gloo, CPU) through PyTorch's launcher: one store with every rank's
files and their totals, agreeing evaluation, resume, and a rank that crashes.

A launch starts two Python processes (torch imported in each): several seconds. One small
end-to-end launch is in the default suite; the others are marked slow."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.errors import UserError
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.ranks.environment import Ranks, ranks_from_env
from ssprop_energy.harness.ranks.launch import Launch
from ssprop_energy.harness.ranks.names import global_source
from ssprop_energy.harness.ranks.rows import total_row
from ssprop_energy.harness.sweep.runner import run_sweep
from ssprop_energy.store import load_run, load_sweep, rank_folder
from tests.support.harness_configs import tiny_config, write_config

runner = CliRunner()
LAUNCH_TIMEOUT_S = 240
HERE = Path(__file__).parent


@pytest.fixture
def deadline() -> Iterator[None]:
    """A launch that hangs fails the test instead of blocking the suite (torchrun's agent
    stops its workers when the alarm's exception reaches it)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the launch took over {LAUNCH_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(LAUNCH_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _launch(config: Path, *args: str) -> object:
    return runner.invoke(app, ["profile", str(config), "--nproc-per-node", "2", "-q", *args])


def _rank_rows(run_dir: Path, rank: int) -> pd.DataFrame:
    return pd.read_csv(rank_folder(run_dir, rank) / "epochs.csv")


def test_ranks_come_from_torchrun_environment() -> None:
    assert ranks_from_env({}) is None
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    ranks = ranks_from_env({**env, "GROUP_RANK": "1"})
    assert ranks == Ranks(3, 4, 1, 2, 1) and ranks.nodes == 2 and not ranks.meters_node
    assert global_source("gpu1", ranks) == "gpu3" and global_source("cpu", ranks) == "cpu1"
    with pytest.raises(UserError, match=r"^torchrun environment: RANK=4 of WORLD_SIZE=4"):
        ranks_from_env({**env, "RANK": "4"})


def test_launch_options_are_torchruns() -> None:
    assert Launch(2).torchrun_args() == ["--nproc-per-node=2", "--standalone"]
    args = Launch(4, 2, 1, "node0", 29400).torchrun_args()
    assert "--master-addr=node0" in args and "--node-rank=1" in args
    for bad, message in (
        (Launch(0), "--nproc-per-node: must be >= 1, got 0"),
        (Launch(2, 2, 2, "a"), "--node-rank: must be < --nnodes (2), got 2"),
        (Launch(2, 2), "--master-addr: required with --nnodes above 1"),
        (Launch(2, 1, 0, None, 70000), "--master-port: must be a port number"),
    ):
        with pytest.raises(UserError, match=f"^{re.escape(message)}"):
            bad.torchrun_args()


def test_phase_calibration_is_refused_before_any_rank_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path, energy={"phase_calibration": True})
    result = _launch(config)
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: energy.phase_calibration: not available")
    assert not (tmp_path / "runs").exists()


def test_totals_add_up_the_ranks_and_leave_siblings_out_of_contention() -> None:
    def row(rank: int, gpu_j: float, own: float, other: float, load: float) -> dict:
        return {
            "run_id": "r", "epoch": 0, "keep": 1.0, "steps": 2, "train_loss": 1.0 + rank,
            "accuracy": 0.5, "time_s": 1.0 + rank, "time_s_forward": 0.2 * (rank + 1),
            "energy_j_forward": gpu_j, f"energy_j_forward_gpu{rank}": gpu_j,
            f"energy_j_gpu{rank}": gpu_j, f"provenance_gpu{rank}": "measured",
            "energy_j": gpu_j, "emissions_kg": gpu_j * 1e-6, "flops_total": 10,
            "cpu_s_own": own, "cpu_s_other": other, "cpu_load_other": load,
        }  # fmt: skip

    rows = [row(0, 30.0, 2.0, 2.5, 0.25), row(1, 10.0, 2.0, 2.0, 0.2)]
    total = total_row(rows, ["gpu0", "gpu1"], [0, 0])
    assert total["energy_j"] == 40.0 and total["energy_j_forward"] == 40.0
    assert total["energy_j_gpu0"] == 30.0 and total["energy_j_gpu1"] == 10.0
    assert total["flops_total"] == 20 and total["time_s"] == 2.0
    assert total["train_loss"] == 1.5 and total["accuracy"] == 0.5 and total["steps"] == 2
    assert math.isclose(total["time_s_forward"], 0.3)
    assert total["cpu_s_own"] == 4.0 and total["cpu_s_other"] == 0.5
    assert math.isclose(total["cpu_load_other"], 0.05)
    assert math.isclose(total["emissions_kg"], 40e-6)
    assert list(total)[:8] == list(rows[0])[:8]  # rank 0's column order


def _check_store(run_dir: Path, epochs: int) -> None:
    record = load_run(run_dir)
    assert record.status == "finished" and len(record.epochs) == epochs
    dist = record.meta.distributed
    assert dist.world_size == 2 and dist.backend == "gloo"
    assert dist.global_batch_size == 2 * dist.batch_size_per_rank == 32
    ranks = [_rank_rows(run_dir, r) for r in range(2)]
    assert all(len(r) == epochs for r in ranks)
    for column in ("flops_forward", "flops_backward", "flops_total"):
        assert record.epochs[column].tolist() == (ranks[0][column] + ranks[1][column]).tolist()
    for column in ("accuracy", "val_loss"):  # evaluation agrees on every rank
        assert ranks[0][column].tolist() == ranks[1][column].tolist()
    assert record.epochs["energy_j_cpu"].gt(0).all()  # local rank 0 meters the CPU
    assert "energy_j_cpu" not in ranks[1].columns
    per_rank = sum(r["energy_j"].fillna(0) for r in ranks)
    assert record.epochs["energy_j"].tolist() == pytest.approx(per_rank.tolist())
    assert not list(run_dir.rglob(".*.tmp")) and not (run_dir / "run.lock").exists()


def test_two_gloo_ranks_write_one_store_with_every_rank_and_totals(
    tmp_path: Path, deadline: None
) -> None:
    environment = dict(os.environ)
    config = write_config(
        tmp_path,
        methods=[{"name": "dense"}],
        train={"epochs": 1},
        energy={"codecarbon": True, "cpu": "codecarbon", "idle_s": 0},
        inference={"enabled": False},
    )
    result = _launch(config)
    assert result.exit_code == 0, result.output
    assert dict(os.environ) == environment  # torchrun's settings stay with its workers
    sweep = tmp_path / "runs" / "tiny"
    (run,) = load_sweep(sweep)
    _check_store(run.path, 1)
    ranks = pd.read_csv(sweep / "ranks.csv")  # the report rank 0 wrote
    assert ranks["rank"].tolist() == [0, 1] and ranks["energy_share"].tolist()[0] == 1.0
    summary = pd.read_csv(sweep / "summary.csv").iloc[0]
    assert summary["world_size"] == 2 and summary["global_batch_size"] == 32
    assert summary["rank_time_imbalance_pct"] >= 0
    assert math.isnan(summary["rank_energy_imbalance_pct"])  # one rank meters (the CPU)


@pytest.mark.slow
def test_a_crashed_rank_fails_the_launch_in_one_line_and_the_run_resumes(
    tmp_path: Path, deadline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    monkeypatch.setenv("SSPROP_TEST_CRASH_RANK", "1")
    raw = tiny_config(
        tmp_path,
        methods=[{"name": "dense"}],
        train={"epochs": 3},
        energy={"codecarbon": True, "cpu": "codecarbon", "idle_s": 0},
        inference={"enabled": False},
    )
    raw["model"] = {"factory": "tests.support.dist_models:crashing_cnn", "kwargs": {"after": 4}}
    config = tmp_path / "model.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = _launch(config)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith("error: rank 1 exited with status 1")
    assert "injected failure on this rank" in errors[0]
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert run.status in ("failed", "interrupted") and run.damage is None
    done = len(run.epochs)
    assert 0 < done < 3 and all(len(_rank_rows(run.path, r)) >= done for r in range(2))
    assert not list(run.path.rglob(".*.tmp"))
    monkeypatch.delenv("SSPROP_TEST_CRASH_RANK")
    result = _launch(config)
    assert result.exit_code == 0, result.output
    _check_store(run.path, 3)


def test_rank_files_are_read_with_the_run_and_checked(tmp_path: Path) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": 1})
    (outcome,) = run_sweep(load_config(config)).outcomes
    run_dir = tmp_path / "runs" / "tiny" / outcome.run_id
    rows = (run_dir / "epochs.csv").read_text()
    for rank in (0, 1):
        rank_folder(run_dir, rank).mkdir(parents=True)
        (rank_folder(run_dir, rank) / "epochs.csv").write_text(rows)
    record = load_run(run_dir)
    assert record.damage is None and record.ranks["rank"].tolist() == [0, 1]
    (rank_folder(run_dir, 1) / "epochs.csv").write_text(rows.splitlines()[0] + "\n")
    damage = load_run(run_dir).damage
    assert damage is not None and damage.endswith(
        "rank-00001/epochs.csv: holds 0 epoch rows, the run 1"
    )


def test_profile_launches_from_a_config_file_only(tmp_path: Path) -> None:
    from ssprop_energy.api import profile

    config = load_config(write_config(tmp_path, methods=[{"name": "dense"}]))
    with pytest.raises(UserError, match="launch: a distributed run needs a config file"):
        profile(config, launch=Launch(2))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_or_killed_launcher_takes_its_ranks_with_it(tmp_path: Path, how: str) -> None:
    """SIGTERM to `profile --nproc-per-node`: its ranks stop, and it exits 143 without a
    traceback; kill -9: its ranks get SIGTERM from the kernel and stop too (no orphan)."""
    config = write_config(
        tmp_path, methods=[{"name": "dense"}], train={"epochs": 500},
        energy={"codecarbon": False, "idle_s": 0}, inference={"enabled": False},
    )  # fmt: skip
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ssprop_energy", "profile", str(config), "--nproc-per-node", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    ranks: list[psutil.Process] = []
    try:
        assert launcher.stdout is not None
        seen = []
        for line in launcher.stdout:  # rank 0's progress: plain lines in a pipe
            seen.append(line)
            if "epoch 1:" in line:
                break
        assert any("epoch 1:" in line for line in seen), "".join(seen)
        ranks = [
            p for p in psutil.Process(launcher.pid).children(recursive=True)
            if "ssprop_energy" in " ".join(p.cmdline())
        ]  # fmt: skip
        assert len(ranks) == 2
        launcher.send_signal(getattr(signal, how))
        if how == "SIGTERM":
            output = "".join(seen) + launcher.communicate(timeout=120)[0]
            assert launcher.returncode == 143, output
            assert "Traceback" not in output and "SignalException" not in output
        else:
            launcher.wait(30)
        _, alive = psutil.wait_procs(ranks, timeout=60)
        assert not alive, f"ranks still running after the launcher's {how}: {alive}"
    finally:
        for process in [*ranks, psutil.Process(launcher.pid)] if launcher.poll() is None else ranks:
            with contextlib.suppress(psutil.Error):
                process.kill()
        launcher.wait()
