"""``--only``: the old files of a run that is trained again are kept aside until the new run
ends, and put back when it stops on bad input, so nothing written is lost."""

from __future__ import annotations

import shutil
from pathlib import Path

from ...errors import UserError
from ...store import LOCK

REPLACED = ".replaced"
"""The sweep's folder where ``--only`` keeps the old runs."""


def set_aside(run_dir: Path) -> Path | None:
    """Move the files of a run that ``--only`` retrains (all but its lock) out of the sweep
    until the new run ends (a bad-input error puts them back, so nothing written is lost)."""
    entries = [p for p in run_dir.iterdir() if p.name != LOCK]
    if not entries:
        return None
    aside = run_dir.parent / REPLACED / run_dir.name
    shutil.rmtree(aside, ignore_errors=True)
    try:
        aside.mkdir(parents=True)
        for entry in entries:
            entry.rename(aside / entry.name)
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot replace this run ({exc.strerror})") from None
    return aside


def put_back(run_dir: Path, aside: Path | None) -> None:
    if aside is None or not aside.exists():
        return
    for entry in run_dir.iterdir():
        if entry.name != LOCK:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for entry in aside.iterdir():
        entry.rename(run_dir / entry.name)
    aside.rmdir()
    remove_if_empty(aside.parent)


def discard(aside: Path | None) -> None:
    if aside is not None and aside.exists():
        shutil.rmtree(aside)
        remove_if_empty(aside.parent)


def remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
