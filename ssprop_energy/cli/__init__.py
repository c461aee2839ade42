"""The ``ssprop-energy`` command line: a thin typer shell over library functions.

Each command lives in its own module of this package and registers itself on ``app``
when imported below.
"""

from __future__ import annotations

from ._app import app

# Command modules (one import line each; they register themselves on ``app``).


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
