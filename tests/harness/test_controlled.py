"""The controlled comparison (docs/controlled.md): a run's stored epochs are the same with it
on and off, an injected slowdown is measured within its interval, and it stops by precision
or by budget as configured."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ssprop_energy import load_config, run_sweep
from ssprop_energy.cli import app
from ssprop_energy.stats import ratio_interval
from ssprop_energy.store import BLOCKS, ComparisonMeta, RunRecord, StoreDamaged, load_sweep
from ssprop_energy.store.checks import check_blocks
from tests.support.harness_configs import tiny_config, write_config
from tests.support.slow_method import register

MEASURED = ("time_s", "energy_j", "emissions_kg", "cpu_", "provenance_")
"""Epoch columns that are measurements (never the same twice); the rest must be equal."""


def _sweep(tmp_path: Path, **overrides: Any) -> list[RunRecord]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, **overrides)))
    cfg = load_config(path)
    run_sweep(cfg)
    return load_sweep(cfg.sweep_dir)


def _compared(records: list[RunRecord]) -> tuple[RunRecord, ComparisonMeta]:
    (record,) = [r for r in records if r.meta.comparison is not None]
    assert record.meta.comparison is not None
    return record, record.meta.comparison


def test_stored_epochs_are_the_same_with_the_comparison_on_and_off(tmp_path: Path) -> None:
    common: dict[str, Any] = {"train": {"epochs": 2}, "data": {"samples": 160}}
    on = _sweep(tmp_path / "on", comparison={"enabled": True, "budget": 1.0}, **common)
    off = _sweep(tmp_path / "off", **common)
    assert [r.run_id for r in on] == [r.run_id for r in off]
    record, state = _compared(on)
    assert state.pairs >= 2 and (record.path / BLOCKS).exists()
    for a, b in zip(on, off, strict=True):
        kept = [c for c in a.epochs.columns if not c.startswith(MEASURED)]
        assert "flops_backward" in kept and "accuracy" in kept and "train_loss" in kept
        pd.testing.assert_frame_equal(a.epochs[kept], b.epochs[kept])
    assert all(r.meta.comparison is None for r in off)


@pytest.mark.slow  # a timing measurement (benchmarks/controlled_comparison.py is its benchmark):
# in one CI run the interval, 1.18 to 1.46, missed the injected 1.5 (see docs/controlled.md)
def test_an_injected_slowdown_is_measured_within_its_interval(tmp_path: Path) -> None:
    register()
    fraction = 0.5
    records = _sweep(
        tmp_path,
        model={"name": "cnn", "kwargs": {"depth": 3, "width": 16}},
        data={"samples": 480, "image_size": 16},
        train={"epochs": 2},
        methods=[{"name": "dense"}, {"name": "sleepy", "fraction": fraction}],
        comparison={"enabled": True, "budget": 1.0, "block_steps": 3, "precision": 0.02},
    )
    _, state = _compared(records)
    interval = ratio_interval(math.exp(v) for v in state.time_log_ratios)
    assert state.pairs >= 3 and interval.exists
    assert interval.low <= 1.0 + fraction <= interval.high, interval
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(tmp_path / "runs" / "tiny"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "controlled (paired blocks inside the run" in result.output
    (row,) = pd.read_csv(out / "methods.csv").query("method == 'sleepy'").to_dict("records")
    assert row["controlled_pairs"] == state.pairs
    low, high = row["time_saving_controlled_pct_ci_low"], row["time_saving_controlled_pct_ci_high"]
    assert low <= -fraction * 100 <= high
    assert row["time_controlled_mde_pct"] > 0


def test_it_stops_by_precision_or_by_budget_as_configured(tmp_path: Path) -> None:
    # the loosest precision (a few pairs meet it even on a loaded machine) and room for pairs
    loose = {"enabled": True, "budget": 1.0, "precision": 0.99, "min_pairs": 3}
    _, state = _compared(_sweep(tmp_path / "precision", comparison=loose, data={"samples": 960}))
    assert state.stop == "precision" and state.pairs >= 3

    def width(pairs: int) -> float:
        ratios = (math.exp(v) for v in state.time_log_ratios[:pairs])
        return ratio_interval(ratios).relative_half_width

    assert width(state.pairs) <= 0.99
    assert state.pairs == 3 or width(state.pairs - 1) > 0.99
    tight = {"enabled": True, "budget": 0.05, "precision": 0.001}
    _, state = _compared(_sweep(tmp_path / "budget", comparison=tight, data={"samples": 320}))
    assert state.stop == "budget"
    one_block = state.extra_time_s / max(state.pairs, 1)
    assert state.extra_time_s <= 0.05 * state.train_time_s + one_block


def test_a_bad_comparison_value_is_one_error_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, comparison={"precision": 0})
    result = CliRunner().invoke(app, ["profile", str(config)])
    assert result.exit_code == 2, result.output
    assert "comparison.precision" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_blocks_csv_is_checked(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        [{"epoch": 0, "block": 0, "arm": "other", "order": 0, "steps": 1, "samples": 4,
          "time_s": 0.1, "energy_j": 1.0, "provenance": "estimated"}]
    )  # fmt: skip
    with pytest.raises(StoreDamaged, match="arm 'other'"):
        check_blocks(frame, tmp_path / BLOCKS)


def test_a_resumed_run_keeps_the_blocks_of_its_stored_epochs(tmp_path: Path, monkeypatch) -> None:
    from ssprop_energy.harness.run import trainer

    overrides: dict[str, Any] = {
        "train": {"epochs": 3},
        "data": {"samples": 160},
        "comparison": {"enabled": True, "budget": 1.0, "precision": 0.001},
    }
    config = write_config(tmp_path, **overrides)
    real = trainer.train_epoch
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> dict[str, Any]:  # second run, third epoch
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", flaky)
    assert CliRunner().invoke(app, ["profile", str(config), "--quiet"]).exit_code == 130
    monkeypatch.setattr(trainer, "train_epoch", real)
    sweep = tmp_path / "runs" / "tiny"
    (stopped,) = [r for r in load_sweep(sweep) if r.status == "interrupted"]
    kept = pd.read_csv(stopped.path / BLOCKS)
    assert set(kept["epoch"]) == {0, 1}
    assert CliRunner().invoke(app, ["profile", str(config), "--quiet"]).exit_code == 0
    record, state = _compared(load_sweep(sweep))
    blocks = pd.read_csv(record.path / BLOCKS)
    assert set(blocks["epoch"]) == {0, 1, 2} and state.pairs == len(blocks) // 2
    pd.testing.assert_frame_equal(blocks[blocks["epoch"] < 2], kept)
    assert blocks["block"].tolist() == sorted(blocks["block"].tolist())


def test_a_failing_shadow_stops_the_comparison_not_the_run(tmp_path: Path, monkeypatch) -> None:
    from ssprop_energy.harness.run import controlled

    real = controlled.build_run

    def failing_shadow(*args: Any, **kwargs: Any) -> Any:
        ctx = real(*args, **kwargs)
        loss, calls = ctx.task.loss, {"n": 0}

        def loss_then_fail(*a: Any, **k: Any) -> Any:
            calls["n"] += 1  # the first call is the shadow's warm-up
            if calls["n"] > 1:
                raise RuntimeError("the shadow broke")
            return loss(*a, **k)

        ctx.task.loss = loss_then_fail  # type: ignore[method-assign]
        return ctx

    monkeypatch.setattr(controlled, "build_run", failing_shadow)
    on = {"enabled": True, "budget": 1.0}
    records = _sweep(tmp_path, comparison=on, data={"samples": 160})
    assert [r.status for r in records] == ["finished", "finished"]
    _, state = _compared(records)
    assert state.stop == "stopped: the shadow failed (RuntimeError: the shadow broke)"
    assert state.pairs == 0
