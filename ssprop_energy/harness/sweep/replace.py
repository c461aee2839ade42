"""``--only``: the old files of a run that is trained again are kept aside until the new run
ends, and put back when it stops on bad input, so nothing written is lost. Nothing is ever
moved or deleted through a symbolic link: a run folder (or the set-aside folder) that is a
link is refused, and a link inside a run folder is moved or removed as the link itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ...errors import UserError
from ...store import LOCK

REPLACED = ".replaced"
"""The sweep's folder where ``--only`` keeps the old runs."""


def set_aside(run_dir: Path) -> Path | None:
    """Move the files of a run that ``--only`` retrains (all but its lock) out of the sweep
    until the new run ends (a bad-input error puts them back, so nothing written is lost)."""
    for folder in (run_dir, run_dir.parent / REPLACED, run_dir.parent / REPLACED / run_dir.name):
        _not_a_link(folder)
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
            _remove(entry)
    for entry in aside.iterdir():
        entry.rename(run_dir / entry.name)
    aside.rmdir()
    remove_if_empty(aside.parent)


def discard(aside: Path | None) -> None:
    if aside is not None and aside.exists():
        shutil.rmtree(aside)
        remove_if_empty(aside.parent)


def remove_if_empty(folder: Path) -> None:
    if not folder.is_symlink() and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _not_a_link(folder: Path) -> None:
    """One error line when ``folder`` is a symbolic link: its files are someone else's."""
    if folder.is_symlink():
        raise UserError(
            f"{folder}: a symbolic link (to {os.readlink(folder)}), not a run's own folder: "
            "--only never moves or deletes files through a link; remove the link and run again"
        )


def _remove(entry: Path) -> None:
    """Delete a file or folder; a link is removed itself, never what it points to."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()
