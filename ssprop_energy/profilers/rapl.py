"""CPU package and DRAM energy from the Linux powercap interface (Intel RAPL, AMD RAPL).

Zones live at ``<root>/intel-rapl:N`` (package N) with sub-zones ``intel-rapl:N:M`` (core,
uncore, dram); AMD uses the same layout (``amd-rapl:N`` on some kernels). Each zone exposes
``name``, ``energy_uj`` (a counter that wraps at ``max_energy_range_uj``) and is often readable
by root only. Sources: ``cpu`` = sum of all ``package-*`` zones, ``dram`` = sum of all
``dram`` zones. ``intel-rapl-mmio`` zones duplicate the package zones and are skipped.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from .sources import EnergySource, PowerReading, SourceInfo, UnavailableSource

POWERCAP_ROOT = Path("/sys/class/powercap")
ZONE_DIR = re.compile(r"^(intel|amd)-rapl(:\d+)+$")
RAPL_RESOLUTION_S = 0.001
GRANT_HINT = (
    "grant read access with `sudo chmod a+r {root}/*-rapl:*/energy_uj "
    "{root}/*-rapl:*/*-rapl:*/energy_uj` (until reboot) or run as root"
)


class RaplZone:
    """One powercap zone's counter, unwrapped into cumulative joules."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = (path / "name").read_text().strip()
        self.max_range_uj = int((path / "max_energy_range_uj").read_text())
        self._last_uj = self._read_uj()
        self._total_uj = 0
        self._lock = threading.Lock()

    def _read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text())

    def energy_j(self) -> float:
        """Joules since this zone was opened; one wrap between reads is assumed at most
        (a package at 200 W wraps a 2^32 uJ range in ~20 s; the sampler reads every 0.1 s)."""
        with self._lock:
            now = self._read_uj()
            delta = now - self._last_uj
            if delta < 0:
                delta += self.max_range_uj
            self._last_uj = now
            self._total_uj += delta
            return self._total_uj * 1e-6


class RaplSource(EnergySource):
    """The sum of several zones (every package, or every DRAM zone)."""

    resolution_s = RAPL_RESOLUTION_S

    def __init__(self, name: str, zones: list[RaplZone]) -> None:
        self.zones = zones
        paths = ", ".join(str(zone.path.name) for zone in zones)
        self.info = SourceInfo(
            name=name, provenance="measured", reason=None, device=f"RAPL {paths}"
        )

    def energy_j(self) -> float:
        return sum(zone.energy_j() for zone in self.zones)

    def sample(self) -> PowerReading | None:
        return None


def _zone_dirs(root: Path) -> list[Path]:
    found = [p for p in root.iterdir() if ZONE_DIR.match(p.name)]
    nested = [c for p in found for c in p.iterdir() if ZONE_DIR.match(c.name)]
    return sorted(found + nested)


def rapl_sources(root: Path = POWERCAP_ROOT) -> dict[str, EnergySource]:
    """``{"cpu": ..., "dram": ...}``: RAPL sources, or stand-ins saying why there are none."""
    if not root.is_dir():
        reason = f"no {root} (not Linux, or no powercap driver)"
        return {n: UnavailableSource(n, reason) for n in ("cpu", "dram")}
    try:
        dirs = _zone_dirs(root)
    except OSError as exc:
        reason = f"cannot list {root}: {exc.strerror}"
        return {n: UnavailableSource(n, reason) for n in ("cpu", "dram")}
    groups: dict[str, list[RaplZone]] = {"cpu": [], "dram": []}
    denied: list[str] = []
    errors: list[str] = []
    for path in dirs:
        try:
            zone = RaplZone(path)
        except PermissionError:
            denied.append(str(path / "energy_uj"))
            continue
        except (OSError, ValueError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        if zone.name.startswith("package"):
            groups["cpu"].append(zone)
        elif zone.name == "dram":
            groups["dram"].append(zone)
    sources: dict[str, EnergySource] = {}
    for name, zones in groups.items():
        if zones:
            sources[name] = RaplSource(name, zones)
        elif denied:
            reason = f"permission denied reading {denied[0]}; " + GRANT_HINT.format(root=root)
            sources[name] = UnavailableSource(name, reason)
        elif errors:
            sources[name] = UnavailableSource(name, f"unreadable RAPL zone {errors[0]}")
        else:
            what = "package" if name == "cpu" else "dram"
            sources[name] = UnavailableSource(name, f"no RAPL {what} zone under {root}")
    return sources
