"""``ssprop-energy profile CONFIG``: train and measure the config's run matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..harness.config import load_config
from ..harness.progress import make_reporter
from ..harness.runner import dry_run_table, run_sweep
from ._app import app, user_errors


@app.command()
@user_errors
def profile(
    config: Annotated[Path, typer.Argument(help="The profile YAML file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the run matrix only.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (overrides `output`).")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Rerun, from scratch, the run with this id prefix."),
    ] = None,
    max_runs: Annotated[int | None, typer.Option("--max-runs", help="Run at most N runs.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train dense and sparse runs, meter and count them, and write the report."""
    cfg = load_config(config)
    console = Console()
    if dry_run:
        table = dry_run_table(cfg, str(config))
        view = Table(title=f"{cfg.name}: {len(table)} runs (analytic FLOPs; nothing trained)")
        for column in table.columns:
            view.add_column(column, justify="right" if table[column].dtype.kind in "if" else "left")
        for row in table.itertuples(index=False):
            view.add_row(*(_cell(v) for v in row))
        console.print(view)
        return
    result = run_sweep(
        cfg,
        out=out,
        only=only,
        max_runs=max_runs,
        reporter=make_reporter(quiet),
        source=str(config),
    )
    if not quiet:
        view = Table(title=f"{cfg.name}: runs of this call")
        for column in ("run", "status", "epochs", "val accuracy", "energy (J)", "time (s)"):
            view.add_column(column)
        for o in result.outcomes:
            view.add_row(
                o.run_id,
                o.status,
                str(o.epochs_done),
                _cell(o.accuracy),
                _cell(o.energy_j),
                f"{o.time_s:.1f}",
            )
        console.print(view)
        if result.skipped:
            console.print(f"{len(result.skipped)} finished run(s) skipped (resume).")
    if result.report_error:
        typer.echo(f"error: report not written: {result.report_error}", err=True)
    elif result.report is not None:
        typer.echo(f"report: {result.report}")
    typer.echo(f"results: {result.sweep_dir}")
    if result.interrupted:
        raise typer.Exit(130)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
