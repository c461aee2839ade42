"""``ssprop-energy estimate CONFIG``: predict the config's runs from a short calibration."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..harness.calibration.estimate import DEFAULT_STEPS, SweepEstimate, estimate_sweep
from ..harness.config import load_config
from ..stats import LEVEL
from ._app import app, user_errors

WIDE = 240


@app.command()
@user_errors
def estimate(
    config: Annotated[Path, typer.Argument(help="The profile YAML file.")],
    steps: Annotated[
        int, typer.Option("--steps", help="Measured steps per priced keep at most (>= 2).")
    ] = DEFAULT_STEPS,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (overrides `output`).")
    ] = None,
) -> None:
    """Predict every planned run's time, energy, CO2 and FLOPs before training.

    Calibrates each distinct (model, batch size, keep, task) of the run matrix on this
    machine, then writes estimate.csv and calibration.csv into the sweep folder, where
    `profile` records each run's prediction. Exit status 2 for bad input."""
    cfg = load_config(config)
    result = estimate_sweep(cfg, steps=steps, out=out, source=str(config))
    console = Console() if sys.stdout.isatty() else Console(width=WIDE)
    console.print(_table(cfg.name, result))
    runs = result.runs
    console.print(
        f"sweep: {runs['time_s'].sum():,.1f} s of training (+{runs['overhead_s'].sum():,.1f} s "
        f"idle measurement and checkpoints), {_joules(runs['energy_j'].sum(min_count=len(runs)))}"
        f", {runs['flops_total'].sum() / 1e12:,.3f} TFLOP"
    )
    console.print(
        f"calibration: {result.time_s:,.1f} s in all ({result.calibration_time_s:,.1f} s "
        f"metered, {_joules(result.energy_j)} {result.provenance}), "
        f"{100 * result.share:.1f}% of the predicted training time"
    )
    for path in result.paths:
        typer.echo(f"wrote {path}")


def _joules(value: float) -> str:
    return "energy unavailable" if math.isnan(value) else f"{value:,.1f} J"


def _range(value: float, low: float, high: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


def _table(name: str, result: SweepEstimate) -> Table:
    level = f"{100 * LEVEL:.0f}%"
    view = Table(title=f"{name}: {len(result.runs)} runs predicted (nothing trained)")
    columns = (
        "run",
        "method",
        "seed",
        "setup",
        "epochs",
        "steps",
        "mean keep",
        f"time s [{level}]",
        f"energy J [{level}]",
        "provenance",
        "CO2 g",
        "TFLOP",
        "note",
    )
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in result.runs.to_dict("records"):
        view.add_row(
            row["run_id"],
            row["method_label"],
            str(row["seed"]),
            row["setup"],
            str(row["epochs"]),
            str(row["steps"]),
            f"{row['mean_keep']:.3g}",
            _range(row["time_s"], row["time_s_low"], row["time_s_high"]),
            _range(row["energy_j"], row["energy_j_low"], row["energy_j_high"]),
            row["provenance"],
            "-" if math.isnan(row["emissions_kg"]) else f"{1000 * row['emissions_kg']:.3g}",
            f"{row['flops_total'] / 1e12:,.3f}",
            row["note"] or "",
        )
    return view
