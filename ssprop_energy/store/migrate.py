"""Older stores read as the current one: a parsed meta.json of any format the store has had
becomes the current format (``meta.FORMAT``), so readers know one layout only.

Format 1 (a meta.json without ``format``): ``notes`` and ``phase_calibration`` may be
absent, ``energy`` and ``environment`` are ``{}`` for a run that was never metered, and runs
stored before tasks had metrics of their own have no ``primary_metric`` (it was accuracy,
higher is better). Format 2 adds ``format`` and writes every nested entry in full."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .meta import FORMAT


class UnknownFormat(ValueError):
    """A meta.json of a format newer than this version of ssprop-energy reads."""


def _from_format_1(raw: dict[str, Any]) -> dict[str, Any]:
    meta = dict(raw)
    meta.setdefault("primary_metric", "accuracy")
    meta.setdefault("higher_is_better", True)
    for entry in ("energy", "environment"):
        if meta.get(entry) is None:
            meta[entry] = {}
    meta.setdefault("notes", [])
    meta.setdefault("phase_calibration", None)
    meta.setdefault("distributed", None)
    meta["format"] = 2
    return meta


STEPS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_format_1}
"""The step from each older format to the next one."""


def format_of(raw: dict[str, Any]) -> int:
    """The format a parsed meta.json follows (1 without a ``format`` key)."""
    value = raw.get("format", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def migrate_meta(raw: dict[str, Any]) -> dict[str, Any]:
    """A parsed meta.json in the current format; UnknownFormat for a format that is not an
    integer from 1 to ``FORMAT``."""
    version = format_of(raw)
    if not 1 <= version <= FORMAT:
        raise UnknownFormat(
            f"format: {raw.get('format')!r} is not a format this version reads (1 to {FORMAT})"
        )
    while version < FORMAT:
        raw = STEPS[version](raw)
        version = format_of(raw)
    return raw
