"""The versions the energy figures depend on, and the range of each that the tests cover.

``TESTED`` is the one place for those ranges: the oldest end is what ``make test-min``
installs (``constraints/min.txt``, the lower bounds in ``pyproject.toml``), the newest end
the newest version the default suite is known to have passed with (recorded by hand: a
newer release that CI has since installed still warns until it is added here).
``ssprop-energy env`` prints the installed versions and warns about any outside its range.
The NVIDIA driver has no tested range: the NVML code is tested against a fake ``pynvml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

from .discovery import Hardware

TESTED: dict[str, tuple[str, str]] = {
    "torch": ("2.13.0", "2.13.0"),
    "codecarbon": ("2.7.1", "3.3.2"),
    "nvidia-ml-py": ("12.535.77", "13.615.71"),
}
"""Distribution name -> (oldest, newest) version the test suite has passed with."""


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"2.13.0+cpu"`` -> ``(2, 13, 0)``."""
    match = re.match(r"\d+(\.\d+)*", version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    parts = [int(p) for p in match.group().split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None where it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class PackageVersion:
    """One distribution: its installed version (None: not installed) and tested range."""

    name: str
    version: str | None
    tested: tuple[str, str]

    @property
    def tested_text(self) -> str:
        oldest, newest = self.tested
        return oldest if oldest == newest else f"{oldest} to {newest}"

    @property
    def warning(self) -> str | None:
        """Why this version is not covered by the tests, or None where it is."""
        if self.version is None:
            return f"{self.name} is not installed"
        oldest, newest = self.tested
        if not release(oldest) <= release(self.version) <= release(newest):
            return f"{self.name} {self.version} is outside the tested range {self.tested_text}"
        return None


def package_versions() -> list[PackageVersion]:
    """torch, CodeCarbon and nvidia-ml-py as installed, each with its tested range."""
    return [PackageVersion(name, installed_version(name), TESTED[name]) for name in TESTED]


def driver_version(hardware: Hardware) -> str:
    """The NVIDIA driver's version, or ``unavailable: <reason>``."""
    if hardware.driver is not None:
        return hardware.driver
    session = hardware.session
    if session is None:
        return "unavailable: no GPU source was asked for"
    if session.reason is not None:
        return f"unavailable: {session.reason.removeprefix('NVML unavailable: ')}"
    return "unavailable: NVML gave no driver version"
