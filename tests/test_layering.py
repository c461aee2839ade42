"""The rooms import one way: the import-linter contracts in pyproject.toml hold, and break
when a reverse import is added."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(project / "pyproject.toml")],
        cwd=project,
        env={"PYTHONPATH": str(project), "PATH": str(LINT.parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("store/__init__.py", "from ..reports import build_report", "Rooms import one way"),
        ("flops/__init__.py", "from ..harness import config", "Rooms import one way"),
        ("sparse/__init__.py", "from ..profilers import EnergyMeter", "Rooms import one way"),
        ("reports/__init__.py", "from ..harness import runs", "Reports read the store only"),
    ],
)
def test_a_reverse_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    shutil.copytree(ROOT / "ssprop_energy", tmp_path / "ssprop_energy")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "ssprop_energy" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa: E402\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout
    assert re.search(rf"^{re.escape(broken)}.* BROKEN$", result.stdout, re.MULTILINE)
    assert "1 broken" in result.stdout
