"""The optional libraries of the integrations: imported on use, one clear line when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import UserError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``; a UserError naming the extra that installs it when it is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or module.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise UserError(
            f"{module}: not installed; the {extra} integration needs it: "
            f"pip install 'ssprop-energy[{extra}]'"
        ) from None
