"""CPU contention while runs train: the recorder's arithmetic on fake psutil figures, and a
tiny sweep beside a CPU burner, flagged in the report and on the terminal."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.run import contention
from ssprop_energy.harness.run.contention import CpuContention
from ssprop_energy.harness.sweep.runner import run_sweep
from ssprop_energy.store import CONTENTION_COLUMNS, load_sweep
from tests.support.harness_configs import write_config

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait guest guest_nice")
ProcTimes = namedtuple("ProcTimes", "user system children_user children_system")


class FakeProcess:
    """This process (and one live child) with CPU times read from ``seconds`` in turn."""

    def __init__(self, seconds: list[float]) -> None:
        self.seconds = iter(seconds)

    def cpu_times(self) -> ProcTimes:
        return ProcTimes(next(self.seconds), 0.0, 0.0, 0.0)

    def children(self, recursive: bool) -> list[FakeProcess]:
        return []


def _machine(monkeypatch: pytest.MonkeyPatch, readings: list[CpuTimes]) -> None:
    it = iter(readings)
    monkeypatch.setattr(contention.psutil, "cpu_times", lambda: next(it))


def test_other_processes_cpu_time_is_the_machine_busy_time_less_our_own(monkeypatch) -> None:
    # 2 logical CPUs over 2 s: 4 CPU-seconds in all. The machine was busy 3 of them (user 2.5
    # + system 0.5; guest time is inside user and not counted twice), this process 1.
    _machine(
        monkeypatch,
        [
            CpuTimes(10.0, 0.0, 5.0, 100.0, 1.0, 0.0, 0.0),
            CpuTimes(12.5, 0.0, 5.5, 101.0, 1.0, 0.5, 0.0),
        ],
    )
    recorder = CpuContention(FakeProcess([3.0, 4.0]))  # type: ignore[arg-type]
    lap = recorder.lap()
    assert list(lap) == list(CONTENTION_COLUMNS)
    assert lap["cpu_s_own"] == pytest.approx(1.0)
    assert lap["cpu_s_other"] == pytest.approx(2.0)
    assert lap["cpu_load_other"] == pytest.approx(2.0 / 4.0)


def test_a_quiet_machine_records_no_other_load(monkeypatch) -> None:
    # busy 1 CPU-second of 4, all of it this process
    _machine(
        monkeypatch,
        [
            CpuTimes(10.0, 0.0, 5.0, 100.0, 0.0, 0.0, 0.0),
            CpuTimes(11.0, 0.0, 5.0, 103.0, 0.0, 0.0, 0.0),
        ],
    )
    lap = CpuContention(FakeProcess([3.0, 4.0])).lap()  # type: ignore[arg-type]
    assert (lap["cpu_s_other"], lap["cpu_load_other"]) == (0.0, 0.0)


class Burner:
    """One spinning process per logical CPU while the block runs; started through a parent
    that exits at once, so they are other processes, not children of this one (whose CPU time
    counts as the run's own)."""

    def __enter__(self) -> Burner:
        spawn = (
            "import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-c', 'while True: pass'],"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)\n"
            "print(p.pid)"
        )
        cpus = os.cpu_count() or 1
        self.pids = [
            int(subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True,
                               check=True).stdout)
            for _ in range(cpus)
        ]  # fmt: skip
        time.sleep(0.3)  # spinning before the run starts
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_sweep_beside_a_cpu_burner_is_flagged_and_within_noise(tmp_path: Path) -> None:
    # Runs train in the order dense seed 0, ssprop seed 0, dense seed 1, ssprop seed 1. The
    # burner spins during the first and the last, so contention, not the method, decides
    # the per-seed time savings: one positive, one negative, and their interval covers 0.
    config = write_config(
        tmp_path,
        seeds=[0, 1],
        train={"epochs": 1},
        data={"samples": 48},
        inference={"enabled": False},
    )
    cfg = load_config(config)
    with Burner():
        run_sweep(cfg, max_runs=1)
    run_sweep(cfg, max_runs=3)
    with Burner():
        result = CliRunner().invoke(app, ["profile", str(config)])
    assert result.exit_code == 0, result.output
    sweep = tmp_path / "runs" / "tiny"
    for record in load_sweep(sweep):
        assert set(CONTENTION_COLUMNS) <= set(record.epochs.columns)
        assert record.epochs["cpu_load_other"].between(0.0, 1.0).all()
        assert record.epochs["cpu_s_own"].gt(0).all()
    summary = pd.read_csv(sweep / "summary.csv").set_index("run")
    for burned in ("dense seed=0", "ssprop keep=0.5 interleave seed=1"):
        assert "busy_machine" in summary.loc[burned, "noise_flags"], summary["noise_flags"]
        assert summary.loc[burned, "cpu_load_other"] > 0.10
    lines = result.output.splitlines()
    headline = next(line for line in lines if line.startswith("headline: "))
    assert "time (95% CI " in headline and "within noise" in headline
    assert "measured on a busy machine: see the flags" in headline
    flags = [line for line in lines if line.startswith("flag: busy machine: ")]
    assert any("dense seed=0" in flag for flag in flags)
    assert lines.index(headline) < lines.index(flags[0])
    page = (sweep / "report.html").read_text()
    assert "busy machine: dense seed=0: other processes used" in page


def test_a_quiet_machine_has_no_flags_and_the_headline_gives_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # psutil faked quiet: each read advances a clock by 1 CPU-second of this process out of
    # 4 of the machine, and the machine is busy exactly as long as this process. One epoch
    # per run (no identical epochs to compare) and no idle measurement (no drift).
    clock = {"s": 0.0}

    def machine() -> tuple[float, float]:
        clock["s"] += 1.0
        return clock["s"], 4.0 * clock["s"]

    monkeypatch.setattr(contention, "machine_cpu_s", machine)
    monkeypatch.setattr(contention, "tree_cpu_s", lambda process: clock["s"])
    config = write_config(
        tmp_path,
        seeds=[0, 1],
        train={"epochs": 1},
        data={"samples": 48},
        inference={"enabled": False},
    )
    result = CliRunner().invoke(app, ["profile", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    headline = next(line for line in lines if line.startswith("headline: "))
    assert "time (95% CI " in headline and "mean of 2 seeds, 95% paired t intervals" in headline
    assert "busy machine" not in headline
    assert lines[lines.index(headline) + 1].startswith("flags: none")
    assert not any(line.startswith("flag: ") for line in lines)
    summary = pd.read_csv(tmp_path / "runs" / "tiny" / "summary.csv")
    assert summary["cpu_load_other"].eq(0.0).all() and summary["noise_flags"].isna().all()
