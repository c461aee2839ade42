"""The shipped example configs load, plan the runs their comments promise, and dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.harness.sweep.runner import dry_run_table
from ssprop_energy.methods import SSPropConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_the_examples_are_there() -> None:
    names = {p.name for p in FILES}
    assert {"quickstart.yaml", "resnet18.yaml", "lr-batch-sweep.yaml", "gpu.yaml",
            "setup-sweep.yaml"} <= names  # fmt: skip


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_loads_and_plans(path: Path) -> None:
    cfg = load_config(path)
    runs = plan_runs(cfg, str(path))
    assert len({r.run_id for r in runs}) == len(runs)


def test_quickstart_is_the_promised_comparison() -> None:
    cfg = load_config(EXAMPLES / "quickstart.yaml")
    assert (cfg.data.name, cfg.model.name, len(cfg.seeds)) == ("digits", "cnn", 2)
    dense, sparse = cfg.methods
    assert dense.name == "dense"
    assert isinstance(sparse, SSPropConfig) and (sparse.keep, sparse.interleave) == (0.2, True)
    assert cfg.comparison.enabled and cfg.comparison.budget == 0.25
    table = dry_run_table(cfg)
    assert len(table) == 4
    keep = dict(zip(table["method"], table["mean_keep"], strict=False))
    assert keep["dense"] == 1.0 and keep["ssprop keep=0.2 interleave"] == pytest.approx(0.6)
    assert table["backward_saving_pct"].max() > 0


def test_setup_sweep_is_the_promised_grid() -> None:
    cfg = load_config(EXAMPLES / "setup-sweep.yaml")
    runs = plan_runs(cfg)
    assert len(runs) == 3 * 3 * 2
    assert cfg.stop_at_target and cfg.target_accuracy == 0.95
    assert {r.train.lr for r in runs} == {0.2, 0.05, 0.005}
    assert {r.data.batch_size for r in runs} == {16, 64, 256}
    assert {r.label for r in runs} == {"dense", "ssprop keep=0.2 interleave"}


def test_ddpm_digits_is_the_promised_comparison() -> None:
    cfg = load_config(EXAMPLES / "ddpm-digits.yaml")
    assert (cfg.task.name, cfg.model.name, cfg.data.name) == ("generation", "unet", "digits")
    dense, sparse = cfg.methods
    assert dense.name == "dense"
    assert isinstance(sparse, SSPropConfig) and (sparse.keep, sparse.interleave) == (0.2, True)
