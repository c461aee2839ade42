"""The integrations' libraries are optional: importing a callback without its library is one
UserError naming the extra, and the package itself never imports them."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from ssprop_energy.errors import UserError
from ssprop_energy.integrations.optional import require

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [
        ("ssprop_energy.integrations.lightning", "lightning.pytorch", "lightning"),
        ("ssprop_energy.integrations.transformers", "transformers", "transformers"),
    ],
)
def test_a_missing_library_is_one_user_error(
    monkeypatch: pytest.MonkeyPatch, module: str, library: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # import of it fails
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(UserError) as caught:
        importlib.import_module(module)
    assert str(caught.value) == (
        f"{library}: not installed; the {extra} integration needs it: "
        f"pip install 'ssprop-energy[{extra}]'"
    )


def test_an_import_error_inside_the_library_is_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_library_xyz.py").write_text("import no_such_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_module_xyz"):
        require("broken_library_xyz", "lightning")


def test_the_package_does_not_import_the_libraries() -> None:
    code = (
        "import sys, ssprop_energy; print(sorted({'lightning', 'transformers'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow  # a subprocess training two runs and writing a report (the loop itself is
# tested in test_recorder.py)
def test_the_plain_loop_example_runs(tmp_path: Path) -> None:
    args = [
        sys.executable,
        str(ROOT / "examples" / "own_loop.py"),
        "--out",
        str(tmp_path),
        "--epochs",
        "1",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "own-loop" / "summary.csv").is_file()
