from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssprop_energy.cli import app
from tests.support.report_store import make_read_only, two_method_store

runner = CliRunner()


def test_report_writes_into_the_sweep_folder(store: Path) -> None:
    result = runner.invoke(app, ["report", str(store), "--target-accuracy", "0.6"])
    assert result.exit_code == 0, result.output
    assert (store / "report.html").is_file() and (store / "summary.csv").is_file()
    assert f"wrote 12 chart files (SVG and PDF) in {store / 'figures'}\n" in result.output
    assert "ssprop keep=0.2 vs dense: saves 80% backward FLOPs" in result.output
    assert "note: excluded from means: ssprop keep=0.2 seed=2" in result.output


def test_report_of_one_run_folder_goes_to_its_report_subfolder(store: Path) -> None:
    result = runner.invoke(app, ["report", str(store / "dense0")])
    assert result.exit_code == 0, result.output
    assert (store / "dense0" / "report" / "report.html").is_file()


def test_report_merges_folders_into_out(tmp_path: Path) -> None:
    a = two_method_store(tmp_path / "a", sweep="one")
    b = two_method_store(tmp_path / "b", sweep="two")
    result = runner.invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "both")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "both" / "report.html").is_file()
    no_out = runner.invoke(app, ["report", str(a), str(b)])
    assert no_out.exit_code == 2 and no_out.output.strip() == (
        "error: --out: required when merging several run folders"
    )


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_folder_without_runs_is_one_error_line(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "nothing-here"
    if make == "empty":
        folder.mkdir()
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(folder) in lines[0]


def test_a_read_only_output_folder_is_one_error_line(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "locked"
    out.mkdir()
    make_read_only(out, monkeypatch)
    try:
        result = runner.invoke(app, ["report", str(store), "--out", str(out)])
    finally:
        out.chmod(0o755)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0]
    assert list(out.iterdir()) == []


def test_report_prints_the_flags_apart_from_the_notes(store: Path) -> None:
    epochs = store / "dense0" / "epochs.csv"
    text = epochs.read_text().splitlines()
    rows = [text[0] + ",cpu_load_other"] + [line + ",0.4" for line in text[1:]]
    epochs.write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["report", str(store)])
    assert result.exit_code == 0, result.output
    assert "flag: busy machine: dense seed=0: other processes used 40% of the CPU time" in (
        result.output
    )
    assert "note: busy machine" not in result.output


def _three_runs(root: Path, last_status: str) -> Path:
    from tests.support.report_store import epoch_rows, write_run

    sweep = root / "sweep"
    for seed, status in enumerate(["finished", "diverged", last_status]):
        rows = epoch_rows(f"r{seed}", [0.5, 0.6] if status == "finished" else [], 1, 1, 1, 1, 1)
        write_run(
            sweep, f"r{seed}", method="dense", label="dense", seed=seed, status=status,
            epochs=rows,
        )  # fmt: skip
    pd.DataFrame(
        {"run_id": ["r0", "r1", "r2", "r3"], "method_label": "dense", "seed": [0, 1, 2, 3],
         "setup": "-"}
    ).to_csv(sweep / "matrix.csv", index=False)  # fmt: skip
    return sweep


@pytest.mark.parametrize(("last", "code"), [("interrupted", 0), ("failed", 1), ("damaged", 3)])
def test_report_exit_status_says_whether_a_run_failed_or_is_damaged(
    tmp_path: Path, last: str, code: int
) -> None:
    sweep = _three_runs(tmp_path, "failed" if last == "damaged" else last)
    if last == "damaged":
        (sweep / "r2" / "meta.json").write_text("[1, 2]")
    result = runner.invoke(app, ["report", str(sweep)])
    assert result.exit_code == code, result.output
    assert (sweep / "report.html").is_file() and "Traceback" not in result.output
    notes = [line for line in result.output.splitlines() if "planned runs" in line]
    if last == "interrupted":
        assert notes == [
            "note: 2 of 4 planned runs not ended yet (missing.csv): r2 (interrupted), "
            "r3 (not started)"
        ]
    else:
        assert notes == [
            "note: 1 of 4 planned runs not ended yet (missing.csv): r3 (not started)",
            f"note: 1 of 4 planned runs failed or damaged (missing.csv): r2 ({last})",
        ]
