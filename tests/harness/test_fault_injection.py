"""A run killed (SIGKILL) at random points between the writes of its epochs resumes into the
rows of an uninterrupted run, and the store is consistent after every resume."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.sweep.runner import run_sweep
from ssprop_energy.store import is_run_dir, load_sweep
from tests.support.harness_configs import write_config

DETERMINISTIC = ["epoch", "keep", "train_loss", "train_accuracy", "val_loss", "accuracy",
                 "steps", "flops_forward", "flops_backward", "flops_backward_dense"]  # fmt: skip
WRITES_PER_RUN = 17
"""config, matrix, meta, 4 per epoch (rows, checkpoint, meta, power) x 3, meta, power"""

KILLED_AT_WRITE = """
import os, signal, sys
from pathlib import Path
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.sweep.runner import run_sweep
real_replace, count, fatal = os.replace, [0], int(sys.argv[3])
def replace(*args, **kwargs):  # every store write ends in os.replace
    count[0] += 1
    if count[0] == fatal:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(*args, **kwargs)
os.replace = replace
run_sweep(load_config(sys.argv[1]), out=Path(sys.argv[2]))
"""


def _killed_at_write(config: Path, out: Path, write: int) -> None:
    """Run the sweep in a child process that SIGKILLs itself just before its write-th write."""
    args = [sys.executable, "-c", KILLED_AT_WRITE, str(config), str(out), str(write)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, -9), done.stderr


def _check_consistent(sweep: Path) -> None:
    if not sweep.is_dir() or not any(is_run_dir(p) for p in sweep.iterdir()):
        return
    for record in load_sweep(sweep):
        assert record.damage is None, record.damage
        assert record.status in ("interrupted", "finished")  # a killed run reads interrupted
        epochs = record.epochs
        assert epochs.empty or epochs["epoch"].tolist() == list(range(len(epochs)))
        if record.meta.status != "running":
            assert record.meta.epochs_done == len(epochs)


def _kill_and_resume(tmp_path: Path, kills: int, seed: int) -> None:
    config = write_config(tmp_path / "cfg", methods=[{"name": "dense"}], train={"epochs": 3})
    cfg = load_config(config)
    straight = run_sweep(cfg, out=tmp_path / "straight")
    expected = load_sweep(straight.sweep_dir)[0].epochs[DETERMINISTIC]
    rng = random.Random(seed)
    out = tmp_path / "killed"
    for _ in range(kills):
        _killed_at_write(config, out, rng.randint(1, WRITES_PER_RUN))
        _check_consistent(out / cfg.name)
    result = run_sweep(cfg, out=out)
    assert result.exit_code == 0
    _check_consistent(result.sweep_dir)
    (run,) = load_sweep(result.sweep_dir)
    assert run.status == "finished" and not list(run.path.glob(".*"))
    assert run.epochs[DETERMINISTIC].equals(expected)


def test_killed_runs_resume_into_the_uninterrupted_rows(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, kills=2, seed=17)


@pytest.mark.slow
def test_many_kills_resume_into_the_uninterrupted_rows(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, kills=15, seed=1)
