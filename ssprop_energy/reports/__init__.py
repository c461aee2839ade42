"""Reports: comparison tables (pandas), CSV files and a self-contained HTML page, read only
from the results store (docs/store.md), so a report can be rebuilt at any time."""

from .report import Report, build_report
from .write import FIGURES, sweep_report, write_report, write_sweep_report

__all__ = [
    "FIGURES",
    "Report",
    "build_report",
    "sweep_report",
    "write_report",
    "write_sweep_report",
]
