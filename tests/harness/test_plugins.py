"""A method and a task from outside the package plug in by registration or entry point, and
run through the YAML and the CLI like the built-in ones."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ssprop_energy import plugins
from ssprop_energy.cli import app
from ssprop_energy.errors import UserError
from ssprop_energy.harness.config import load_config
from ssprop_energy.methods import METHODS, register_method
from ssprop_energy.plugins import Registry
from ssprop_energy.store import load_sweep
from ssprop_energy.tasks import TASKS
from tests.support import toy_plugins
from tests.support.harness_configs import write_config

runner = CliRunner()


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[EntryPoint]]]:
    """Entry points as an installed package would declare them; the registries forget them
    (and reload) after the test."""
    declared: dict[str, list[EntryPoint]] = {}
    monkeypatch.setattr(plugins, "entry_points", lambda group: declared.get(group, []))
    for registry in (METHODS, TASKS):
        monkeypatch.setattr(registry, "_loaded", False)
    yield declared
    METHODS.unregister("weight-penalty")
    TASKS.unregister("top-two")


def _declare(declared: dict[str, list[EntryPoint]], group: str, name: str, cls: str) -> None:
    declared.setdefault(group, []).append(
        EntryPoint(name=name, value=f"tests.support.toy_plugins:{cls}", group=group)
    )


def test_a_method_from_an_entry_point_trains_through_the_yaml_and_the_cli(
    tmp_path: Path, entry_points: dict[str, list[EntryPoint]]
) -> None:
    _declare(entry_points, "ssprop_energy.methods", "weight-penalty", "WeightPenalty")
    toy_plugins.WeightPenalty.calls.clear()
    config = write_config(
        tmp_path, methods=[{"name": "dense"}, {"name": "weight-penalty", "weight": 0.001}]
    )
    result = runner.invoke(app, ["profile", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    runs = {r.meta.method: r for r in load_sweep(tmp_path / "runs" / "tiny")}
    toy = runs["weight-penalty"]
    assert toy.status == "finished" and len(toy.epochs) == 2
    assert toy.meta.method_label == "weight-penalty weight=0.001"
    assert toy.meta.method_params["weight"] == 0.001
    assert toy.epochs["keep"].tolist() == [1.0, 1.0]
    assert toy.epochs["flops_backward"].tolist() == runs["dense"].epochs["flops_backward"].tolist()
    # the penalty changed training: same seed and data as dense, different loss
    assert toy.epochs["train_loss"].iloc[0] != runs["dense"].epochs["train_loss"].iloc[0]
    calls = toy_plugins.WeightPenalty.calls
    assert calls["prepare"] >= 1 and calls["finalize"] == 1 and calls["start_epoch"] == 2
    assert calls["extra_loss"] >= 2 * 4  # 64 training samples in batches of 16, 2 epochs


def test_a_task_from_an_entry_point_sets_the_primary_metric(
    tmp_path: Path, entry_points: dict[str, list[EntryPoint]]
) -> None:
    _declare(entry_points, "ssprop_energy.tasks", "top-two", "TopTwo")
    config = write_config(tmp_path, task={"name": "top-two"}, methods=[{"name": "dense"}])
    result = runner.invoke(app, ["profile", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert (run.meta.task, run.meta.primary_metric) == ("top-two", "top2_accuracy")
    assert run.epochs["top2_accuracy"].between(0, 1).all()
    assert run.meta.run_config["task"] == {"name": "top-two"}


def test_registered_in_code_and_validated_by_its_own_config(tmp_path: Path) -> None:
    register_method(toy_plugins.WeightPenalty)
    try:
        cfg = load_config(write_config(tmp_path, methods=[{"name": "weight-penalty"}]))
        assert isinstance(cfg.methods[0], toy_plugins.WeightPenaltyConfig)
        bad = write_config(tmp_path, methods=[{"name": "weight-penalty", "weight": -1}])
        with pytest.raises(UserError, match=r"methods\[0\]\.weight: .*greater than 0"):
            load_config(bad)
    finally:
        METHODS.unregister("weight-penalty")


def test_unknown_names_and_clashes_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"methods\[1\]: unknown method 'nope' \(known: dense"):
        load_config(write_config(tmp_path, methods=[{"name": "dense"}, {"name": "nope"}]))
    with pytest.raises(UserError, match=r"task: unknown task 'nope' \(known: classification"):
        load_config(write_config(tmp_path, task={"name": "nope"}))

    class Impostor(toy_plugins.WeightPenalty):
        name = "dense"

    with pytest.raises(ValueError, match="method 'dense' is already registered"):
        register_method(Impostor)


def test_a_broken_entry_point_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    registry: Registry = Registry("method", "ssprop_energy.methods")
    broken = EntryPoint(name="gone", value="no_such_module:Gone", group="ssprop_energy.methods")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken])
    with pytest.raises(UserError, match=r"entry point 'gone' of ssprop_energy\.methods"):
        registry.names()
    misnamed = EntryPoint(
        name="other", value="tests.support.toy_plugins:WeightPenalty", group="ssprop_energy.methods"
    )
    registry = Registry("method", "ssprop_energy.methods")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [misnamed])
    with pytest.raises(UserError, match="has name 'weight-penalty'"):
        registry.get("other")
