"""The documentation site builds cleanly, and the README's links stay inside the repository.

``mkdocs build --strict`` turns every warning into an error: a nav entry without its page, a
page missing from the nav, a broken link or anchor between pages. The build goes to a
temporary folder, so ``site/`` is never touched.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("material") is None:
        pytest.fail("needs mkdocs-material: pip install -e '.[test]'")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = done.stdout + done.stderr
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0 and not warnings, log
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "img" / "report.png").is_file()


def test_readme_links_stay_in_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 260
    for target in LINK.findall(readme):
        if target.startswith(("https://", "http://")):
            continue
        path = target.split("#", 1)[0]
        resolved = (ROOT / path).resolve()
        assert resolved.is_relative_to(ROOT), f"README links outside the repository: {target}"
        assert resolved.exists(), f"README links to a missing file: {target}"
