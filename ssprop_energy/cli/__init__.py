"""The ``ssprop-energy`` command line: a thin typer shell over library functions.

Each command lives in its own module of this package and registers itself on ``app``
when imported below.
"""

from __future__ import annotations

# Command modules (one import line each; they register themselves on ``app``).
from . import (
    doctor_cmd,  # noqa: F401
    energy_cmd,  # noqa: F401
    estimate_cmd,  # noqa: F401
    flops_cmd,  # noqa: F401
    profile_cmd,  # noqa: F401
    report_cmd,  # noqa: F401
)
from ._app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
