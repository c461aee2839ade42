"""Config loading: defaults, run expansion, and one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssprop_energy.errors import UserError
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.runs import _spread, plan_runs
from ssprop_energy.methods import SSPropConfig, method_label
from tests.support.harness_configs import tiny_config, write_config


def test_load_and_plan(config_file: Path) -> None:
    cfg = load_config(config_file)
    runs = plan_runs(cfg)
    assert [r.label for r in runs] == ["dense", "ssprop keep=0.5 interleave"]
    assert len({r.run_id for r in runs}) == 2
    assert plan_runs(load_config(config_file))[0].run_id == runs[0].run_id  # stable ids


def test_sweep_grid_order_covers_evenly_and_applies_values(tmp_path: Path) -> None:
    path = write_config(tmp_path, sweep={"lr": [0.1, 0.01, 0.001], "batch_size": [8, 16]},
                        seeds=[0, 1])  # fmt: skip
    runs = plan_runs(load_config(path))
    assert len(runs) == 3 * 2 * 2 * 2
    first = runs[: len(runs) // 2]
    assert {r.seed for r in first} == {0}
    setups = [(r.setup["lr"], r.setup["batch_size"]) for r in first[::2]]
    assert len(set(setups)) == 6
    assert {r.train.lr for r in runs} == {0.1, 0.01, 0.001}
    assert {r.data.batch_size for r in runs} == {8, 16}
    # any prefix of the spread order is spread out: the first half hits both ends
    assert set(_spread(8)[:4]) == {0, 2, 4, 6} and set(_spread(8)[:2]) == {0, 4}


def test_method_labels() -> None:

    assert method_label(SSPropConfig(keep=0.3, mode="linear", min_keep=0.1, warmup=1)) == (
        "ssprop keep=0.3 linear min=0.1 by epoch warmup=1"
    )


BAD = [
    ("methods", [{"name": "dense"}, {"name": "ssprop", "keep": 0}],
     "methods[1].keep: must be in (0, 1], got 0"),
    ("model", {"name": "vgg99"}, "model.name: unknown model, got 'vgg99'"),
    ("bogus", 1, "bogus: unknown field"),
    ("data", {"name": "npz", "path": "/no/such/file.npz"}, "data.path: no such file"),
    ("sweep", {"lr": [0.1, -1.0]}, "sweep.lr: Input should be greater than 0, got -1"),
    ("sweep", {"colour": [1]}, "sweep.colour: not a train field"),
    ("methods", [{"name": "ssprop", "mode": "cosine"}], "methods[0].min_keep: required"),
    ("methods", [{"name": "prune"}], "methods[0]: unknown method"),
    ("train", {"epochs": "many"}, "train.epochs: Input should be a valid integer"),
    ("methods", [{"name": "dense", "init_from": "dense"}],
     "methods[0].init_from: no earlier method labelled 'dense' (earlier labels: none)"),
    ("methods", [{"name": "dense"}, {"name": "ssprop", "init_from": "ssprop"}],
     "methods[1].init_from: no earlier method labelled 'ssprop' (earlier labels: 'dense')"),
    ("sweep", {"seed": [1, 2]}, "sweep.seed: list the seeds in 'seeds' instead"),
    ("sweep", {"batch_size": [16, 0]},
     "sweep.batch_size: Input should be greater than or equal to 1, got 0"),
    ("name", "-rf", "name: must be a folder name of letters, digits, '.', '_' and '-' that "
     "does not start with '.' or '-'"),
    ("name", "n" * 101, "name: must be at most 100 characters long, got 101"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "message"), BAD)
def test_bad_configs_name_file_and_field(tmp_path: Path, key: str, value: object, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**tiny_config(tmp_path), key: value}))
    with pytest.raises(UserError) as err:
        plan_runs(load_config(path), str(path))
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_malformed_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmodel: {name: cnn\n")
    with pytest.raises(UserError, match=r"broken.yaml: malformed YAML at line \d+"):
        load_config(path)
    with pytest.raises(UserError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    path.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_config(path)
