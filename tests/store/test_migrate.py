"""Older stores read as the current one: a meta.json without ``format`` (format 1, written
by profile before the typed records) reads through store.migrate to the same report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ssprop_energy.reports import build_report
from ssprop_energy.store import (
    FORMAT,
    EnergyMeta,
    RunMeta,
    RunStore,
    StoreDamaged,
    load_sweep,
    migrate_meta,
    read_meta,
)

FORMAT_1 = Path(__file__).parent / "format1"
"""Two runs (dense and ssProp) and the report tables built from them before format 2."""


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FORMAT_1 / "tiny", tmp_path / "tiny"))


def test_a_format_1_store_reads_as_typed_records(old_store: Path) -> None:
    for path in sorted(p for p in old_store.iterdir() if p.is_dir()):
        assert "format" not in json.loads((path / "meta.json").read_text())
    runs = load_sweep(old_store)
    assert [r.status for r in runs] == ["finished", "finished"]
    for run in runs:
        assert isinstance(run.meta, RunMeta) and run.meta.format == FORMAT
        assert run.meta.energy.sources["cpu"].provenance == "estimated"
        assert run.meta.environment.gpus == [] and run.meta.estimate is None


def test_a_format_1_store_gives_the_same_report(old_store: Path) -> None:
    report = build_report([old_store])
    expected = FORMAT_1 / "expected"
    assert report.headline + "\n" == (expected / "headline.txt").read_text()
    for name in ("runs", "methods", "phases", "energy_sources", "environment"):
        table = getattr(report, name)
        if name == "runs":
            table = table.drop(columns="path")
        stored = pd.read_csv(expected / f"{name}.csv")
        got = pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False)))
        stored = stored.drop(columns=[c for c in ("path",) if c in stored])
        added = [c for c in got.columns if c not in stored.columns]  # columns added since
        assert all("controlled" in c or c.endswith("_5pct") for c in added), added
        assert got[added].fillna(0).eq(0).all().all()  # no comparison in an old store
        pd.testing.assert_frame_equal(got[list(stored.columns)], stored, check_dtype=False)


def test_a_rewritten_run_has_the_current_format_and_the_same_meta(old_store: Path) -> None:
    run_dir = next(p for p in sorted(old_store.iterdir()) if p.is_dir())
    old = read_meta(run_dir)
    RunStore(run_dir).write_meta(old)
    assert json.loads((run_dir / "meta.json").read_text())["format"] == FORMAT
    assert read_meta(run_dir) == old


def test_format_1_fills_what_older_runs_lack() -> None:
    meta = migrate_meta({"run_id": "x", "energy": None})
    assert meta["format"] == FORMAT and meta["primary_metric"] == "accuracy"
    assert meta["higher_is_better"] is True and meta["notes"] == [] and meta["energy"] == {}
    assert EnergyMeta() == EnergyMeta(**meta["energy"])


@pytest.mark.parametrize("version", [FORMAT + 1, 0, "2", True])
def test_an_unknown_format_is_a_damaged_meta(old_store: Path, version: object) -> None:
    run_dir = next(p for p in sorted(old_store.iterdir()) if p.is_dir())
    path = run_dir / "meta.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": version}))
    with pytest.raises(StoreDamaged, match=r"meta.json: format: .* is not a format this"):
        read_meta(run_dir)
