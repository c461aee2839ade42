"""The one atomic writer: every file of the store (and every file the tool writes) goes to a
temporary file in the target folder and is renamed into place, so a crash never leaves a
half-written file. Files get the mode a plain ``open`` gives (0666 less the process's umask),
not ``mkstemp``'s 0600, so a shared results folder stays readable. Errors are one-line
UserErrors naming the file."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd

from ..errors import UserError


def _umask() -> int:
    """The process's umask: read from /proc where Linux shows it, since ``os.umask`` can
    only read it by setting it, which would briefly change it for every thread."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _file_mode() -> int:
    """0666 less the umask: the mode ``open`` gives a new file."""
    return 0o666 & ~_umask()


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` on a temporary binary file beside ``path``, then rename it into place.

    A folder that cannot be created or written, or a failing write, is a UserError naming
    the folder or file; the temporary file never stays behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"{path.parent}: cannot write results here ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _file_mode())
            write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_temp_files(folder: Path | str) -> None:
    """Remove the atomic writer's temporary files left in ``folder`` by a killed process
    (call it only on a folder no other process writes)."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    """NaN and infinity become null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (NaN becomes null)."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=_json_default)
    return atomic_write_text(path, text + "\n")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet reads a cell beginning with one of these as a formula (CSV injection)."""


def _plain_number(cell: str) -> bool:
    """A lone ``-`` (the store's empty setup) or a signed number such as ``-0.5``: no
    formula, left as it is."""
    if cell == "-":
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def neutralize_cell(cell: Any) -> Any:
    """A text cell that begins with a formula character, or with ``'`` itself (so the quote
    can always be taken off again), gets a leading ``'`` (as OWASP advises); numbers, empty
    cells and other text are left as they are."""
    if not isinstance(cell, str) or not cell:
        return cell
    if cell[0] == "'" or (cell.startswith(FORMULA_START) and not _plain_number(cell)):
        return "'" + cell
    return cell


def restore_cell(cell: Any) -> Any:
    """``neutralize_cell`` undone: a text cell's leading ``'`` taken off."""
    return cell[1:] if isinstance(cell, str) and cell.startswith("'") else cell


def _text_columns(frame: pd.DataFrame) -> list[Any]:
    return [
        c
        for c in frame.columns
        if frame[c].dtype.kind == "O"
        or isinstance(frame[c].dtype, pd.CategoricalDtype | pd.StringDtype)
    ]


def csv_text(frame: pd.DataFrame, header: bool = True) -> str:
    """The one rule for the CSV files the tool writes: ``frame`` as CSV text (no index, floats
    in full precision), its text cells and column names neutralized (``neutralize_cell``);
    numeric columns are written as they are."""
    text = frame.copy()
    carriage = False
    for column in _text_columns(frame):
        text[column] = frame[column].astype(object).map(neutralize_cell)
        carriage = carriage or text[column].map(lambda c: isinstance(c, str) and "\r" in c).any()
    text.columns = [neutralize_cell(c) for c in frame.columns]
    # pandas leaves a lone CR unquoted, which readers take for a line break: quote text then
    quoting = csv.QUOTE_NONNUMERIC if carriage else csv.QUOTE_MINIMAL
    return text.to_csv(index=False, header=header, quoting=quoting)


def restore_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame read from a CSV written by ``csv_text``, with its text cells and column names
    as they were."""
    restored = frame.rename(columns=restore_cell)
    for column in _text_columns(restored):
        restored[column] = restored[column].map(restore_cell)
    return restored


def atomic_write_csv(path: Path | str, frame: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV (no index) atomically, floats in full precision, text cells
    neutralized against formula injection (``csv_text``)."""
    return atomic_write_text(path, csv_text(frame))
