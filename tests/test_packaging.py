"""The version, the license and the citation file."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml
from typer.testing import CliRunner

import ssprop_energy
from ssprop_energy.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"ssprop-energy {version('ssprop-energy')}\n"
    assert version("ssprop-energy") == ssprop_energy.__version__


def test_license_is_an_spdx_expression_with_its_file() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    assert pyproject["project"]["license-files"] == ["LICENSE"]
    assert "setuptools>=77" in pyproject["build-system"]["requires"]  # license-files' floor
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_citation_names_the_tool_and_the_ssprop_paper() -> None:
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["version"] == ssprop_energy.__version__ and citation["license"] == "MIT"
    (paper,) = citation["references"]
    assert [a["family-names"] for a in paper["authors"]] == ["Zhong", "Huang", "Shi"]
    assert paper["identifiers"][0]["value"] == "arXiv:2408.12561"
