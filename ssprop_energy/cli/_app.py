"""The typer app and the error handling every command shares."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import version
from typing import Annotated, ParamSpec, TypeVar

import typer

from ..errors import UserError

app = typer.Typer(
    name="ssprop-energy",
    help="Measure what sparse back-propagation (ssProp) really saves.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"ssprop-energy {version('ssprop-energy')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Measure what sparse back-propagation (ssProp) really saves."""


P = ParamSpec("P")
R = TypeVar("R")


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a UserError (or ValueError from argument checks) into one line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (UserError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper
