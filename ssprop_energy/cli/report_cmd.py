"""``ssprop-energy report RUN_DIR [RUN_DIR ...]``: CSV files and report.html from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..reports import FIGURES, build_report, write_report
from ..store import is_run_dir
from ._app import app, user_errors

FAILED_RUN = 1
"""Exit status of ``report`` when some run failed (the notes give its error)."""
DAMAGED_RUN = 3
"""Exit status of ``report`` when some run is damaged (left out; the notes name the file)."""


@app.command()
@user_errors
def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR", help="Sweep folders (runs/NAME) or run folders to compare."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (default: the one RUN_DIR; RUN_DIR/report for a run folder)."
        ),
    ] = None,
    target_accuracy: Annotated[
        float | None,
        typer.Option(help="Validation accuracy (0 to 1) for energy and time to target."),
    ] = None,
    baseline: Annotated[
        str, typer.Option(help="Method or method label the other runs are compared with.")
    ] = "dense",
) -> None:
    """Write summary.csv, methods.csv, epochs.csv, phases.csv, setups.csv and report.html.

    Exit status: 0 when every run read is sound and none failed (diverged runs and runs not
    ended yet included), 1 when a run failed, 3 when a run is damaged (the report is written
    in both cases), 2 for bad input."""
    if out is None:
        if len(run_dirs) > 1:
            raise UserError("--out: required when merging several run folders")
        out = run_dirs[0] / "report" if is_run_dir(run_dirs[0]) else run_dirs[0]
    built = build_report(run_dirs, target_accuracy=target_accuracy, baseline=baseline)
    written = write_report(built, out)
    figures = [p for p in written if p.parent.name == FIGURES]
    for path in written:
        if path not in figures:
            typer.echo(f"wrote {path}")
    if figures:
        typer.echo(f"wrote {len(figures)} chart files (SVG and PDF) in {figures[0].parent}")
    typer.echo(built.headline)
    for note in built.notes:  # the flags among them as `flag: ...`
        typer.echo(f"{'flag' if note in built.flags else 'note'}: {note}")
    if built.damaged:
        raise typer.Exit(DAMAGED_RUN)
    if built.runs["status"].eq("failed").any():
        raise typer.Exit(FAILED_RUN)
