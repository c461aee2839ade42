"""Sweeps spread over processes: ``--shard K/N``, the SLURM array variables, the planned
matrix in the store, and many processes finishing one store's matrix between them."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ssprop_energy import profile
from ssprop_energy.cli import app
from ssprop_energy.errors import UserError
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.harness.sweep.runner import run_sweep
from ssprop_energy.harness.sweep.shard import (
    Shard,
    parse_shard,
    resolve_shard,
    shard_from_env,
    shard_runs,
)
from ssprop_energy.reports import build_report, write
from ssprop_energy.store import load_sweep, read_matrix
from tests.support.harness_configs import write_config

runner = CliRunner()
TIMEOUT_S = 60


def _specs(tmp_path: Path, **overrides: object) -> list:
    return plan_runs(load_config(write_config(tmp_path, **overrides)))


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2", "1/2/3"])
def test_bad_shard_is_one_line_naming_the_option(text: str) -> None:
    with pytest.raises(UserError, match=r"^--shard: expected K/N with 1 <= K <= N"):
        parse_shard(text)


def test_shard_from_slurm_array_counts_from_the_first_task() -> None:
    assert shard_from_env({}) is None
    env = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shard_from_env(env) == Shard(1, 4)
    env = {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert shard_from_env(env) == Shard(4, 4)
    assert resolve_shard("2/3", env) == Shard(2, 3)  # the option wins
    with pytest.raises(UserError, match=r"^SLURM_ARRAY_TASK_ID=4 \(SLURM_ARRAY_TASK_MIN=0"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"})
    with pytest.raises(UserError, match=r"^SLURM_ARRAY_TASK_COUNT: expected a whole number"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "x"})


def test_shards_split_the_matrix_and_keep_init_from_with_its_source(tmp_path: Path) -> None:
    methods = [
        {"name": "dense"},
        {"name": "ssprop", "keep": 0.5},
        {"name": "ssprop", "keep": 0.3, "init_from": "dense"},
    ]
    specs = _specs(tmp_path, methods=methods, seeds=[0, 1, 2])
    parts = [shard_runs(specs, Shard(k, 4)) for k in range(1, 5)]
    ids = [s.run_id for part in parts for s in part]
    assert sorted(ids) == sorted(s.run_id for s in specs)  # every run once
    assert all(parts)  # 6 groups over 4 parts
    for part in parts:
        inside = {s.run_id for s in part}
        assert all(s.init_run in inside for s in part if s.init_run)
    assert [s.run_id for s in shard_runs(specs, Shard(2, 4))] == [s.run_id for s in parts[1]]


QUICK = {"train": {"epochs": 1}, "inference": {"enabled": False}}


def _train_part(config: Path, part: str, out: Path) -> None:
    """One process of the sweep (forked: no second torch import): its trained run ids.
    One thread: OpenMP's pool, if the parent used it, does not survive a fork."""
    torch.set_num_threads(1)
    result = run_sweep(load_config(config), shard=parse_shard(part))
    out.write_text(json.dumps([o.run_id for o in result.outcomes]))


def _finish_together(tmp_path: Path, parts: tuple[str, str]) -> tuple[list[str], Path]:
    """Two processes, one part each, started together on one store; every run they trained."""
    config = write_config(tmp_path, **QUICK)
    forked = multiprocessing.get_context("fork")
    outs = [tmp_path / f"part-{i}.json" for i in range(len(parts))]
    processes = [
        forked.Process(target=_train_part, args=(config, p, o))
        for p, o in zip(parts, outs, strict=True)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(TIMEOUT_S)
            assert process.exitcode == 0, f"a part exited with {process.exitcode}"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    return [run for o in outs for run in json.loads(o.read_text())], tmp_path / "runs" / "tiny"


def test_two_shards_on_one_store_finish_the_matrix_each_run_once(tmp_path: Path) -> None:
    trained, sweep = _finish_together(tmp_path, ("1/2", "2/2"))
    planned = read_matrix(sweep)
    assert sorted(trained) == sorted(planned["run_id"])  # every run once, by one process
    runs = load_sweep(sweep)
    assert sorted(r.run_id for r in runs) == sorted(planned["run_id"])
    assert all(r.status == "finished" and len(r.epochs) == 1 for r in runs)
    assert not list(sweep.glob("*/run.lock")) and not list(sweep.rglob("*.tmp*"))
    assert build_report([sweep]).missing.empty


@pytest.mark.slow
def test_overlapping_parts_never_train_a_run_twice(tmp_path: Path) -> None:
    trained, sweep = _finish_together(tmp_path, ("1/1", "1/2"))
    assert sorted(trained) == sorted(read_matrix(sweep)["run_id"])
    assert all(r.status == "finished" for r in load_sweep(sweep))


def test_report_names_the_runs_of_the_matrix_still_missing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(write, "render_charts", lambda report: [])  # the tables are the point
    cfg = load_config(write_config(tmp_path, **QUICK))
    sweep = run_sweep(cfg, shard=Shard(1, 2)).sweep_dir
    planned = read_matrix(sweep)
    assert len(planned) == 2 and len(load_sweep(sweep)) == 1
    report = build_report([sweep])
    assert report.missing["status"].eq("not started").all() and len(report.missing) == 1
    assert any(
        n.startswith("1 of 2 planned runs not ended yet (missing.csv): ") for n in report.notes
    )
    write.write_report(report, sweep)
    assert (
        pd.read_csv(sweep / "missing.csv")["run_id"].tolist() == report.missing["run_id"].tolist()
    )
    run_sweep(cfg, shard=Shard(2, 2))
    report = build_report([sweep])
    assert report.missing.empty
    write.write_report(report, sweep)
    assert not (sweep / "missing.csv").exists()


def test_the_python_api_takes_a_shard(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(write, "render_charts", lambda report: [])
    config = write_config(tmp_path, **QUICK)
    result = profile(config, shard="2/2")
    expected = shard_runs(plan_runs(load_config(config)), Shard(2, 2))
    assert [o.run_id for o in result.outcomes] == [s.run_id for s in expected]
    assert result.report is not None and len(result.report.missing) == 1
    with pytest.raises(UserError, match=r"^--shard: expected K/N"):
        profile(config, shard="3/2")


def test_slurm_array_variables_choose_the_part(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(write, "render_charts", lambda report: [])
    config = write_config(tmp_path, **QUICK)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    result = runner.invoke(app, ["profile", str(config), "-q"])
    assert result.exit_code == 0, result.output
    specs = shard_runs(plan_runs(load_config(config)), Shard(2, 2))
    assert sorted(r.run_id for r in load_sweep(tmp_path / "runs" / "tiny")) == sorted(
        s.run_id for s in specs
    )
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    result = runner.invoke(app, ["profile", str(config), "-q"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: SLURM_ARRAY_TASK_ID=7")


def test_dry_run_lists_the_part_of_the_shard(tmp_path: Path) -> None:
    methods = [{"name": "dense"}, {"name": "ssprop", "keep": 0.5}]
    config = write_config(tmp_path, methods=methods, seeds=[0, 1])
    part = shard_runs(plan_runs(load_config(config)), Shard(2, 3))
    result = runner.invoke(app, ["profile", str(config), "--dry-run", "--shard", "2/3"])
    assert result.exit_code == 0, result.output
    assert f"tiny part 2/3: {len(part)} runs" in result.output
    shown = [spec.run_id for spec in plan_runs(load_config(config)) if spec.run_id in result.output]
    assert shown == [spec.run_id for spec in part]
