from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.profiler_fakes import write_zone


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two packages (each with core and dram sub-zones) and an mmio duplicate."""
    root = tmp_path / "powercap"
    write_zone(root, "intel-rapl:0", "package-0", 1_000_000)
    write_zone(root, "intel-rapl:0/intel-rapl:0:0", "core", 500_000)
    write_zone(root, "intel-rapl:0/intel-rapl:0:1", "dram", 200_000)
    write_zone(root, "intel-rapl:1", "package-1", 3_000_000)
    write_zone(root, "intel-rapl:1/intel-rapl:1:0", "dram", 100_000)
    write_zone(root, "intel-rapl-mmio:0", "package-0", 9_000_000)
    return root
