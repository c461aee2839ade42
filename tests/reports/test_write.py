from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ssprop_energy.errors import UserError
from ssprop_energy.reports import build_report, write_report
from tests.support.report_store import make_read_only

FILES = ("summary.csv", "methods.csv", "epochs.csv", "phases.csv", "setups.csv", "report.html")


def test_write_report_writes_every_file(store: Path) -> None:
    written = write_report(build_report([store]), store)
    assert [p.name for p in written[: len(FILES)]] == list(FILES)
    charts = ("energy", "phases", "power", "savings", "tradeoff", "training")
    assert [p.relative_to(store).as_posix() for p in written[len(FILES) :]] == [
        f"figures/{chart}.{kind}" for chart in charts for kind in ("pdf", "svg")
    ]
    epochs = pd.read_csv(store / "epochs.csv")
    assert len(epochs) == 3 + 3 + 3 + 3 + 1
    assert {"run", "method_label", "energy_j_cum", "provenance_gpu0"} <= set(epochs.columns)
    assert epochs.groupby("run")["energy_j_cum"].last()["dense seed=0"] == 360.0
    assert len(pd.read_csv(store / "summary.csv")) == 5
    assert len(pd.read_csv(store / "methods.csv")) == 2
    assert not list(store.glob(".*.tmp"))


def test_a_run_folder_is_never_overwritten(store: Path) -> None:
    run_dir = store / "dense0"
    before = (run_dir / "epochs.csv").read_text()
    with pytest.raises(UserError, match="is a run folder"):
        write_report(build_report([run_dir]), run_dir)
    assert (run_dir / "epochs.csv").read_text() == before


def test_a_read_only_folder_is_one_error_and_loses_nothing(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in FILES:
        (out / name).write_text(f"old {name}")
    make_read_only(out, monkeypatch)
    try:
        with pytest.raises(UserError, match=str(out)):
            write_report(build_report([store]), out)
        assert all((out / name).read_text() == f"old {name}" for name in FILES)
    finally:
        out.chmod(0o755)
