"""``ssprop-energy flops``: the per-layer FLOP table of a model or of a profile config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..flops import count_flops
from ._app import app, user_errors


def parse_shape(text: str) -> tuple[int, ...]:
    """``64x3x32x32`` -> (64, 3, 32, 32)."""
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UserError(
            f"--input-shape: expected sizes joined by x (64x3x32x32), got {text!r}"
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise UserError(f"--input-shape: sizes must be >= 1, got {text!r}")
    return shape


@app.command()
@user_errors
def flops(
    config: Annotated[
        Path | None, typer.Argument(help="A profile YAML (instead of --model).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Builtin model or package.module:factory.")
    ] = None,
    input_shape: Annotated[str | None, typer.Option(help="Batch shape, e.g. 64x3x32x32.")] = None,
    keep: Annotated[
        float | None, typer.Option(help="Apply this keep to every convolution.")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the per-layer table here.")] = None,
) -> None:
    """Print per-layer forward/backward FLOPs, the totals and what ssProp saves."""
    from ..harness.models import build_model

    if config is not None:
        from ..harness.config import load_config
        from ..harness.data import load_data
        from ..harness.runs import plan_runs
        from ..harness.trainer import build_context

        cfg = load_config(config)
        spec = plan_runs(cfg, str(config))[0]
        ctx = build_context(spec, load_data(spec.data), torch.device("cpu"))
        net, shape = ctx.model, (spec.data.batch_size, *ctx.data.input_shape)
        title = f"{config}: {spec.model.label}, input {'x'.join(map(str, shape))}"
    elif model is not None and input_shape is not None:
        shape = parse_shape(input_shape)
        net = build_model(model)
        title = f"{model}, input {input_shape}"
    else:
        raise UserError("give a profile CONFIG, or --model and --input-shape")
    dense = count_flops(net, shape, keep=1.0)
    report = count_flops(net, shape, keep=keep) if keep is not None else dense
    _print(report, title + (f", keep {keep}" if keep is not None else ""))
    if keep is not None:
        saving = 100 * (1 - report.backward / dense.backward) if dense.backward else 0.0
        typer.echo(f"backward saving at keep {keep}: {saving:.1f}% "
                   f"({dense.backward:,} -> {report.backward:,} FLOPs)")  # fmt: skip
    if csv is not None:
        typer.echo(f"wrote {report.to_csv(csv)}")


def _print(report: object, title: str) -> None:
    from ..flops import FlopReport

    assert isinstance(report, FlopReport)
    table = Table(title=title)
    for column in report.table.columns:
        table.add_column(column, justify="left" if column in ("module", "type") else "right")
    for row in report.table.itertuples(index=False):
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    console = Console()
    console.print(table)
    console.print(
        f"forward {report.forward:,}  backward {report.backward:,}  selection "
        f"{report.selection:,}  total {report.total:,} FLOPs  ({report.convention})"
    )
    if report.skipped:
        console.print("not counted (no formula): " + ", ".join(report.skipped))
