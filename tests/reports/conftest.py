from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.report_store import two_method_store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The two-method sweep folder of tests.support.report_store.two_method_store."""
    return two_method_store(tmp_path / "runs")
