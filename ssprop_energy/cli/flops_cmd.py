"""``ssprop-energy flops``: the per-layer FLOP table of a model or of a profile config."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..flops import FlopReport, count_flops, training_flops
from ..sparse import DropScheduler
from ._app import app, user_errors

WIDE = 120
"""Terminal width from which the table shows the gradient split."""
COUNT_COLUMNS = ("forward", "grad_input", "grad_weight", "grad_bias", "backward", "selection")


@dataclass(frozen=True)
class _Schedule:
    """An ssProp method of a config: its converted model and drop schedule."""

    label: str
    model: torch.nn.Module
    scheduler: DropScheduler
    epochs: int
    steps_per_epoch: int


def parse_shape(text: str) -> tuple[int, ...]:
    """``64x3x32x32`` or ``64,3,32,32`` -> (64, 3, 32, 32)."""
    try:
        shape = tuple(int(part) for part in re.split(r"[x,]", text.lower().replace(" ", "")))
    except ValueError:
        raise UserError(
            f"--input-shape: expected sizes joined by x or commas (64x3x32x32 or 64,3,32,32), "
            f"got {text!r}"
        ) from None
    if any(s < 1 for s in shape):
        raise UserError(f"--input-shape: sizes must be >= 1, got {text!r}")
    return shape


def human(flops: int) -> str:
    """``1234567`` -> ``1.23M``: three significant digits with an SI prefix."""
    value = float(flops)
    for prefix in ("", "k", "M", "G", "T", "P"):
        if abs(value) < 999.5 or prefix == "P":
            return f"{value:.3g}{prefix}" if prefix else str(flops)
        value /= 1000
    raise AssertionError("unreachable")


@app.command()
@user_errors
def flops(
    config: Annotated[
        Path | None, typer.Argument(help="A profile YAML (instead of --model).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Builtin model or package.module:factory.")
    ] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Batch shape: 64x3x32x32 or 64,3,32,32.")
    ] = None,
    keep: Annotated[
        float | None, typer.Option(help="Apply this keep to every convolution.")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the per-layer table here.")] = None,
) -> None:
    """Print per-layer forward/backward FLOPs, the totals and what ssProp saves."""
    from ..models import build_model

    schedules: list[_Schedule] = []
    if config is not None:
        net, shape, title, schedules = _from_config(config)
    elif model is not None and input_shape is not None:
        shape = parse_shape(input_shape)
        net = build_model(model)
        title = f"{model}, input {input_shape}"
    else:
        raise UserError("give a profile CONFIG, or --model and --input-shape")
    dense = count_flops(net, shape, keep=1.0)
    report = count_flops(net, shape, keep=keep) if keep is not None else dense
    console = Console()
    _print(console, report, title + (f", keep {keep:g} on every convolution" if keep else ""))
    if keep is not None:
        console.print(
            f"saving at keep {keep:g}: backward {_pct(report.backward, dense.backward)} "
            f"({human(dense.backward)} -> {human(report.backward)}), forward + backward + "
            f"selection {_pct(report.total, dense.total)} "
            f"({human(dense.total)} -> {human(report.total)})"
        )
    for s in schedules:
        run = training_flops(s.model, shape, s.scheduler, s.epochs, s.steps_per_epoch)
        total = run[run.epoch == "total"].iloc[0]
        console.print(
            f"{s.label}: mean keep {total['mean_keep']:.2f} over {s.epochs} epochs x "
            f"{s.steps_per_epoch} steps, backward saving {total['backward_saving_pct']:.1f}% "
            f"(convolutions {total['conv_backward_saving_pct']:.1f}%), training FLOPs saving "
            f"{total['total_saving_pct']:.1f}%"
        )
    if csv is not None:
        console.print(f"wrote {report.to_csv(csv)}")


def _from_config(config: Path) -> tuple[torch.nn.Module, tuple[int, ...], str, list[_Schedule]]:
    """The config's model and batch shape, and each sparse method's prepared model and
    schedule (at the first seed and sweep point)."""
    from ..harness.config import load_config
    from ..harness.run.build import build_run, load_run_data
    from ..harness.runs import plan_runs

    cfg = load_config(config)
    specs = plan_runs(cfg, str(config))[: len(cfg.methods)]
    data = load_run_data(specs[0])
    contexts = [build_run(spec, data, torch.device("cpu")) for spec in specs]
    shape = (specs[0].data.batch_size, *data.input_shape)
    title = f"{config}: {specs[0].model.label}, input {'x'.join(map(str, shape))}"
    schedules = [
        _Schedule(
            spec.label,
            ctx.model,
            ctx.method.scheduler,
            spec.train.epochs,
            data.steps_per_epoch(spec.data.batch_size),
        )
        for spec, ctx in zip(specs, contexts, strict=True)
        if ctx.method.scheduler.min_keep < 1.0  # type: ignore[operator]
    ]
    return contexts[0].model, shape, title, schedules


def _pct(value: int, dense: int) -> str:
    return f"{100 * (1 - value / dense):.1f}%" if dense else "n/a"


def _print(console: Console, report: FlopReport, title: str) -> None:
    table = Table(title=title, caption=f"FLOPs, {report.convention}")
    shown = [c for c in report.table.columns if c not in ("params", "total")]
    narrow = console.width < WIDE
    if narrow:  # the gradient split stays in the CSV
        shown = [c for c in shown if not c.startswith("grad_")]
    for column in shown:
        if column in COUNT_COLUMNS:  # short numbers: never cut
            table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
        else:  # long names wrap rather than lose their end
            table.add_column(column, overflow="fold")
    for row in report.table[shown].itertuples(index=False):
        cells = dict(zip(shown, row, strict=True))
        table.add_row(*(human(int(v)) if c in COUNT_COLUMNS else str(v) for c, v in cells.items()))
    console.print(table)
    if narrow:
        console.print(f"(grad_input, grad_weight, grad_bias: --csv, or {WIDE} columns)")
    console.print(
        f"total: forward {report.forward:,}  backward {report.backward:,}  selection "
        f"{report.selection:,}  = {report.total:,} FLOPs ({human(report.total)})"
    )
    if report.traced_on != "meta":
        console.print(f"shapes recorded by running the model on {report.traced_on}")
    if report.skipped:
        console.print("not counted (no formula): " + ", ".join(report.skipped))
