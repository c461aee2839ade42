"""``ssprop-energy profile CONFIG``: train and measure the config's run matrix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ..api import profile as run_profile
from ..errors import UserError
from ..harness.config import load_config
from ..harness.ranks.launch import Launch, LaunchFailed, LaunchStopped, RankFailed
from ..harness.runs import RunSpec, plan_runs
from ..harness.sweep.progress import make_reporter
from ..harness.sweep.runner import SweepResult, dry_run_table
from ..harness.sweep.shard import resolve_shard
from ..reports import Report, sweep_report
from ..store import setup_label
from ._app import app, user_errors

WIDE = 240


@app.command()
@user_errors
def profile(
    config: Annotated[Path, typer.Argument(help="The profile YAML file.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the run matrix (the shard's part) only.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (overrides `output`).")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Rerun, from scratch, the run with this id prefix."),
    ] = None,
    max_runs: Annotated[int | None, typer.Option("--max-runs", help="Run at most N runs.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Train only part K of N of the run matrix (K/N; default: the SLURM array "
            "task's part when SLURM_ARRAY_TASK_COUNT is set, else every run).",
        ),
    ] = None,
    nproc_per_node: Annotated[
        int | None,
        typer.Option(
            "--nproc-per-node",
            help="Train each run on N processes (DDP) through PyTorch's launcher (torchrun).",
        ),
    ] = None,
    nnodes: Annotated[int, typer.Option("--nnodes", help="Nodes of the launch.")] = 1,
    node_rank: Annotated[int, typer.Option("--node-rank", help="This node's rank.")] = 0,
    master_addr: Annotated[
        str | None, typer.Option("--master-addr", help="Address of rank 0's node.")
    ] = None,
    master_port: Annotated[
        int | None, typer.Option("--master-port", help="Free port on rank 0's node.")
    ] = None,
) -> None:
    """Train dense and sparse runs, meter and count them, and write the report.

    Exit status: 0 when every run of the call finished (or diverged, or was skipped), 1 when
    one failed or is damaged, 2 for bad input or a report that could not be written, 128 +
    the signal when Ctrl-C (130), SIGHUP (129) or SIGTERM (143) stopped it."""
    cfg = load_config(config)
    part = resolve_shard(shard)
    # In a pipe or a log, tables keep their natural width instead of folding at 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=WIDE)
    if dry_run:
        name = cfg.name if part is None else f"{cfg.name} part {part.index}/{part.count}"
        _print_matrix(console, name, dry_run_table(cfg, str(config), part))
        return
    how = None
    if nproc_per_node is not None:
        how = Launch(nproc_per_node, nnodes, node_rank, master_addr, master_port)
    try:
        result = run_profile(
            config, out=out, only=only, max_runs=max_runs, reporter=make_reporter(quiet),
            shard=part, launch=how, quiet=quiet, report=False,
        )  # fmt: skip
    except (LaunchFailed, RankFailed) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except LaunchStopped as exc:  # the ranks printed their line; rerun to resume
        raise typer.Exit(128 + exc.signum) from None
    if result.launched:
        return
    if result.rank not in (None, 0):
        raise typer.Exit(result.exit_code)
    if not quiet:
        specs = {s.run_id: s for s in plan_runs(cfg, str(config))}
        _print_outcomes(console, cfg.name, result, specs)
    raise typer.Exit(_report(result))


def _report(result: SweepResult) -> int:
    """Write the sweep's report and print where it and the results are; the exit status."""
    try:
        report = sweep_report(result.sweep_dir)
    except UserError as exc:
        typer.echo(f"error: report not written: {exc}", err=True)
        return result.exit_code if result.interrupted else 2
    if report is not None:
        _print_headline(report)
        typer.echo(f"report: {result.sweep_dir / 'report.html'}")
    typer.echo(f"results: {result.sweep_dir}")
    if result.failed and not result.interrupted:
        typer.echo(f"{len(result.failed)} run(s) failed or damaged: see the report's notes")
    return result.exit_code


def _print_outcomes(
    console: Console, name: str, result: SweepResult, specs: dict[str, RunSpec]
) -> None:
    """The runs this call trained: id, method, seed, setup, how each ended, its figures.
    ``specs``: the planned runs by id (every outcome is one of them)."""
    view = Table(title=f"{name}: runs of this call")
    (metric, *others) = {o.primary_metric for o in result.outcomes} or {"accuracy"}
    metric = metric if metric.startswith("val") else f"val {metric}"
    metric = "primary metric" if others else metric
    columns = ("run", "method", "seed", "setup", "status", "epochs", metric)
    for column in (*columns, "energy (J)", "time (s)"):
        view.add_column(column)
    for o in result.outcomes:
        spec = specs[o.run_id]
        view.add_row(
            o.run_id,
            spec.label,
            str(spec.seed),
            setup_label(spec.setup),
            o.status,
            str(o.epochs_done),
            _cell(o.primary),
            _cell(o.energy_j),
            f"{o.time_s:.1f}",
        )
    console.print(view)
    if result.skipped:
        console.print(f"{len(result.skipped)} finished run(s) skipped (resume).")


def _print_headline(report: Report) -> None:
    """The report's headline over every run of the sweep, then each flag (or that none)."""
    typer.echo(f"headline: {report.headline}")
    for flag in report.flags:
        typer.echo(f"flag: {flag}")
    if not report.flags:
        typer.echo("flags: none (no busy machine, noisy epoch times or idle drift)")


def _print_matrix(console: Console, name: str, table: pd.DataFrame) -> None:
    view = Table(title=f"{name}: {len(table)} runs (analytic FLOPs; nothing trained)")
    columns = {
        "run_id": "run",
        "method": "method",
        "seed": "seed",
        "setup": "setup",
        "epochs": "epochs",
        "steps_per_epoch": "steps/epoch",
        "mean_keep": "mean keep",
        "flops_forward_per_step": "fwd GFLOP/step",
        "flops_backward_dense_per_step": "dense bwd GFLOP/step",
        "flops_backward_run": "bwd GFLOP/run",
        "backward_saving_pct": "bwd saving %",
    }
    for title in columns.values():
        view.add_column(title, overflow="fold")
    for row in table.to_dict("records"):
        cells = []
        for key in columns:
            value = row[key]
            if key.startswith("flops_"):
                cells.append(f"{value / 1e9:,.3f}")
            elif isinstance(value, float):
                cells.append(f"{value:.3g}")
            else:
                cells.append(str(value))
        view.add_row(*cells)
    console.print(view)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
