"""constraints/min.txt pins every lower bound in pyproject.toml, so ``make test-min`` runs the
suite on the lowest supported versions; the tested ranges ``ssprop-energy env`` warns with
start at those pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ssprop_energy.profilers.versions import TESTED

ROOT = Path(__file__).resolve().parents[1]
TORCH_TESTED = "2.13.0"
"""The one torch the suite runs on (the CPU wheel ``make venv`` and ``make test-min`` install)."""


def lower_bounds() -> dict[str, Version]:
    """Distribution -> its ``>=`` bound, for the dependencies and the ``test`` extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds: dict[str, Version] = {}
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(line)
        floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert len(floors) == 1, f"{line}: needs exactly one >= lower bound"
        bounds[canonicalize_name(requirement.name)] = floors[0]
    return bounds


def min_pins() -> dict[str, Version]:
    """Distribution -> its ``==`` pin in constraints/min.txt."""
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints" / "min.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        assert version, f"constraints/min.txt: {line!r} is not NAME==VERSION"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def test_min_constraints_pin_every_lower_bound() -> None:
    bounds = lower_bounds()
    bounds.pop("torch")  # its floor is checked against the APIs used, not installed
    assert min_pins() == bounds


def test_tested_ranges_start_at_the_lowest_versions_installed() -> None:
    pins = min_pins()
    assert TESTED["torch"][0] == TORCH_TESTED
    for name, (oldest, newest) in TESTED.items():
        if name != "torch":
            assert Version(oldest) == pins[name], name
        assert Version(oldest) <= Version(newest), name
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count(f"torch=={TORCH_TESTED}") == 2  # make venv and make test-min
