"""``ssprop-energy doctor [--json FILE]``: check the energy measurement on this machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..profilers.doctor import CheckResult, DoctorSettings, run_doctor
from ..store import atomic_write_json
from ._app import app, user_errors


def check_line(result: CheckResult) -> str:
    """``status  name  reason [figures]`` on one line."""
    figures = ", ".join(f"{key}={value}" for key, value in result.figures.items())
    line = f"{result.status:<15} {result.name:<26} {result.reason}"
    return f"{line} [{figures}]" if figures else line


@app.command()
@user_errors
def doctor(
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this JSON file.")
    ] = None,
    burn: Annotated[
        float, typer.Option(help="Seconds of matmul load per GPU for the counter check.")
    ] = DoctorSettings.burn_s,
) -> None:
    """Check the energy measurement here: one line per check, pass / fail / not applicable.

    Exits 1 when a check fails, else 0."""
    if json_file is not None and json_file.is_dir():
        raise UserError(f"--json: {json_file} is a folder; give the path of a JSON file")
    if burn <= 0:
        raise UserError(f"--burn: must be > 0 seconds, got {burn:g}")
    results = run_doctor(DoctorSettings(burn_s=burn))
    for result in results:
        typer.echo(check_line(result))
    failed = [r.name for r in results if r.status == "fail"]
    if json_file is not None:
        atomic_write_json(
            json_file,
            {"failed": failed, "checks": [dataclasses.asdict(r) for r in results]},
        )
    if failed:
        raise typer.Exit(1)
