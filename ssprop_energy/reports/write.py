"""``write_report``: the report's tables as CSV files and one self-contained HTML page."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import BinaryIO

from ..errors import UserError
from ..store import atomic_write, atomic_write_csv, atomic_write_text, is_run_dir
from .charts import CHARTS, render_charts
from .html import render_html
from .report import Report, build_report

CSV_FILES = {
    "summary.csv": "runs",
    "methods.csv": "methods",
    "epochs.csv": "epochs",
    "phases.csv": "phases",
    "setups.csv": "setups",
}
WHEN_PRESENT = {
    "inference.csv": "inference",
    "gates.csv": "gates",
    "sampling.csv": "sampling",
    "ranks.csv": "ranks",
    "missing.csv": "missing",
}
"""Tables written only when some run has them (older stores, runs without gates), and the
planned runs not ended yet when there are any."""
FIGURES = "figures"
"""The folder of the chart files: ``<key>.svg`` and ``<key>.pdf`` per chart of the page."""


def write_report(report: Report, out_dir: Path | str) -> list[Path]:
    """Write the CSV files (inference.csv, gates.csv, sampling.csv, ranks.csv and missing.csv
    only when not empty; an empty one's old file is removed), report.html, and each chart as
    ``figures/<key>.svg`` and ``figures/<key>.pdf`` into ``out_dir`` atomically; returns
    their paths. The files of a chart the data no longer supports are removed, so
    ``figures/`` always matches the page.

    ``out_dir`` may be a sweep folder, never a run folder. Everything is rendered before the
    first write, and each file replaces its old version only once complete, so a folder that
    cannot be written loses nothing.
    """
    out_dir = Path(out_dir)
    if is_run_dir(out_dir):
        raise UserError(
            f"{out_dir}: is a run folder (its epochs.csv belongs to the run); write elsewhere"
        )
    charts = render_charts(report)
    html = render_html(report, charts)
    figures = {f"{c.key}.svg": c.svg.encode("utf-8") for c in charts}
    figures |= {f"{c.key}.pdf": c.pdf() for c in charts}
    tables = {name: getattr(report, attr) for name, attr in CSV_FILES.items()}
    tables |= {n: t for n, a in WHEN_PRESENT.items() if not (t := getattr(report, a)).empty}
    written = [atomic_write_csv(out_dir / name, table) for name, table in tables.items()]
    for name in WHEN_PRESENT.keys() - tables.keys():  # empty now: the folder matches the report
        (out_dir / name).unlink(missing_ok=True)
    written.append(atomic_write_text(out_dir / "report.html", html))
    for name, content in sorted(figures.items()):
        written.append(atomic_write(out_dir / FIGURES / name, partial(_write_bytes, content)))
    for key in {k for k, *_ in CHARTS} - {c.key for c in charts}:  # a chart no longer drawn
        for suffix in (".svg", ".pdf"):
            (out_dir / FIGURES / f"{key}{suffix}").unlink(missing_ok=True)
    return written


def sweep_report(sweep_dir: Path | str) -> Report | None:
    """Build the report of a sweep folder, write it there and return it; None when the
    folder holds no run yet."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir() or not any(is_run_dir(p) for p in sweep_dir.iterdir()):
        return None
    report = build_report([sweep_dir])
    write_report(report, sweep_dir)
    return report


def write_sweep_report(sweep_dir: Path | str) -> Path | None:
    """Build the report of a sweep folder and write it there; returns report.html's path,
    or None when the folder holds no run yet."""
    return None if sweep_report(sweep_dir) is None else Path(sweep_dir) / "report.html"


def _write_bytes(content: bytes, fh: BinaryIO) -> None:
    fh.write(content)
