from __future__ import annotations

from pathlib import Path

import pytest

from ssprop_energy.profilers.rapl import RaplSource, rapl_sources
from tests.support.profiler_fakes import set_energy, write_zone


def test_packages_and_dram_are_summed_and_mmio_skipped(powercap: Path) -> None:
    sources = rapl_sources(powercap)
    cpu, dram = sources["cpu"], sources["dram"]
    assert isinstance(cpu, RaplSource) and isinstance(dram, RaplSource)
    assert cpu.info.provenance == dram.info.provenance == "measured"
    assert [z.path.name for z in cpu.zones] == ["intel-rapl:0", "intel-rapl:1"]
    assert [z.path.name for z in dram.zones] == ["intel-rapl:0:1", "intel-rapl:1:0"]
    assert cpu.energy_j() == 0.0
    set_energy(powercap / "intel-rapl:0", 1_500_000)
    set_energy(powercap / "intel-rapl:1", 5_000_000)
    set_energy(powercap / "intel-rapl-mmio:0", 99_000_000)
    assert cpu.energy_j() == pytest.approx(2.5)
    set_energy(powercap / "intel-rapl:0/intel-rapl:0:1", 1_200_000)
    assert dram.energy_j() == pytest.approx(1.0)


def test_wrap_around_uses_max_energy_range(tmp_path: Path) -> None:
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 990_000, max_uj=1_000_000)
    cpu = rapl_sources(tmp_path)["cpu"]
    set_energy(zone, 995_000)
    assert cpu.energy_j() == pytest.approx(0.005)
    set_energy(zone, 15_000)  # wrapped: 5_000 to the top, then 15_000
    assert cpu.energy_j() == pytest.approx(0.025)
    set_energy(zone, 20_000)
    assert cpu.energy_j() == pytest.approx(0.030)


def test_amd_zones(tmp_path: Path) -> None:
    write_zone(tmp_path, "amd-rapl:0", "package-0", 0)
    sources = rapl_sources(tmp_path)
    assert sources["cpu"].info.provenance == "measured"
    assert sources["dram"].info.provenance == "unavailable"
    assert "no RAPL dram zone" in (sources["dram"].info.reason or "")


def test_permission_denied_says_how_to_grant_access(
    powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_text = Path.read_text

    def deny(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", deny)
    sources = rapl_sources(powercap)
    for name in ("cpu", "dram"):
        info = sources[name].info
        assert info.provenance == "unavailable"
        assert "permission denied" in (info.reason or "")
        assert "chmod" in (info.reason or "")


def test_missing_root_and_empty_root(tmp_path: Path) -> None:
    missing = rapl_sources(tmp_path / "nope")
    assert missing["cpu"].info.provenance == "unavailable"
    assert "not Linux" in (missing["cpu"].info.reason or "")
    empty = rapl_sources(tmp_path)
    assert "no RAPL package zone" in (empty["cpu"].info.reason or "")
