"""Files the tool writes take the user's umask, as a plain ``open`` would."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssprop_energy.store import atomic_write_json, atomic_write_text


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: None, mask: int, mode: int) -> None:
    os.umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what the user's umask gives any new file
    written = [
        atomic_write_text(tmp_path / "a.txt", "x"),
        atomic_write_json(tmp_path / "b.json", {"a": 1}),
        atomic_write_text(tmp_path / "a.txt", "replaced"),
    ]
    assert stat.S_IMODE(plain.stat().st_mode) == mode
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [mode] * 3
