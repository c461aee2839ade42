"""``write_report``: the report's tables as CSV files and one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..store import atomic_write_csv, atomic_write_text, is_run_dir
from .html import render_html
from .report import Report, build_report

CSV_FILES = {
    "summary.csv": "runs",
    "methods.csv": "methods",
    "epochs.csv": "epochs",
    "phases.csv": "phases",
    "setups.csv": "setups",
}
WHEN_PRESENT = {"inference.csv": "inference", "gates.csv": "gates"}
"""Tables written only when some run has them (older stores, runs without gates)."""


def write_report(report: Report, out_dir: Path | str) -> list[Path]:
    """Write the CSV files (inference.csv and gates.csv only when some run has them) and
    report.html into ``out_dir`` atomically; returns their paths.

    ``out_dir`` may be a sweep folder, never a run folder. Everything is rendered before the
    first write, and each file replaces its old version only once complete, so a folder that
    cannot be written loses nothing.
    """
    out_dir = Path(out_dir)
    if is_run_dir(out_dir):
        raise UserError(
            f"{out_dir}: is a run folder (its epochs.csv belongs to the run); write elsewhere"
        )
    html = render_html(report)
    tables = {name: getattr(report, attr) for name, attr in CSV_FILES.items()}
    tables |= {n: t for n, a in WHEN_PRESENT.items() if not (t := getattr(report, a)).empty}
    written = [atomic_write_csv(out_dir / name, table) for name, table in tables.items()]
    written.append(atomic_write_text(out_dir / "report.html", html))
    return written


def write_sweep_report(sweep_dir: Path | str) -> Report | None:
    """Build the report of a sweep folder and write it there (``sweep_dir/report.html`` and
    the CSV files); returns the ``Report``, or None when the folder holds no run yet."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir() or not any(is_run_dir(p) for p in sweep_dir.iterdir()):
        return None
    report = build_report([sweep_dir])
    write_report(report, sweep_dir)
    return report
