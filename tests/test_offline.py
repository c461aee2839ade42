"""The offline install and the GPU validation: ``make wheelhouse`` (scripts/wheelhouse.py)
and ``make gpu-check`` (scripts/gpu_check.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def item(name: str, *requires: str) -> dict:
    return {"metadata": {"name": name, "version": "1.0", "requires_dist": list(requires)}}


def test_wheelhouse_keeps_what_the_roots_need_except_what_the_target_has() -> None:
    wheelhouse = script("wheelhouse")
    resolved = [
        item("ssprop-energy", "torch>=2.4", "pyyaml>=6", "codecarbon", "pytest ; extra == 'test'"),
        item("torch", "sympy", "filelock"),
        item("sympy", "mpmath"),
        item("mpmath"),
        item("filelock"),
        item("PyYAML"),
        item("codecarbon", "pandas", "colorama ; sys_platform == 'win32'", "filelock"),
        item("pandas", "numpy"),
        item("numpy"),
        item("colorama"),
        item("pytest", "pluggy", "exceptiongroup ; python_version < '3.11'"),
        item("pluggy"),
        item("exceptiongroup"),
        item("hypothesis", "sortedcontainers"),
        item("sortedcontainers"),
    ]
    excluded = wheelhouse.read_names(None) | {"pandas", "sortedcontainers"}
    kept = [i["metadata"]["name"] for i in wheelhouse.needed(resolved, excluded, "3.12")]
    # torch's own needs go with it, but filelock stays: codecarbon needs it too
    assert kept == [
        "codecarbon",
        "filelock",
        "hypothesis",
        "pluggy",
        "pytest",
        "PyYAML",
        "ssprop-energy",
    ]


def test_wheelhouse_refuses_a_bad_python_version_and_a_missing_exclude_file() -> None:
    run = [sys.executable, str(ROOT / "scripts" / "wheelhouse.py")]
    bad = subprocess.run([*run, "--python-version", "12"], capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.strip() == "error: --python-version: expected 3.N, got '12'"
    missing = [*run, "--python-version", "3.12", "--exclude-file", "no-such-file.txt"]
    done = subprocess.run(missing, capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip() == "error: --exclude-file: no file no-such-file.txt"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_check_refuses_without_a_gpu_in_one_line() -> None:
    done = subprocess.run(["make", "-s", "gpu-check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: gpu-check needs a CUDA GPU, and torch sees none here "
        "(torch.cuda.is_available() is False); run it on a GPU machine"
    ]


def test_gpu_check_reads_the_test_outcomes_and_plans_two_epochs(tmp_path: Path) -> None:
    gpu_check = script("gpu_check")
    tests = tmp_path / "test_two.py"
    tests.write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert 1 == 2\n"
        "@pytest.mark.skip(reason='no GPU')\n"
        "def test_skipped(): pass\n"
    )
    junit = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests),
         f"--junitxml={junit}", "--rootdir", str(tmp_path), "-c", os.devnull],
        capture_output=True,
    )  # fmt: skip
    outcomes = gpu_check.pytest_outcomes(junit)
    assert outcomes["counts"] == {"passed": 1, "failure": 1, "skipped": 1}
    assert outcomes["tests"]["test_two::test_skipped"] == "skipped: no GPU"
    assert gpu_check.pytest_outcomes(tmp_path / "none.xml") == {}
    config = yaml.safe_load(gpu_check.two_epoch_config(tmp_path).read_text())
    original = yaml.safe_load((ROOT / "examples" / "gpu.yaml").read_text())
    assert config["train"] == {**original["train"], "epochs": 2}
    assert config["output"] == str(tmp_path / "runs")
    assert config["methods"] == original["methods"]


@pytest.mark.slow
def test_wheelhouse_installs_into_a_fresh_venv_without_an_index(tmp_path: Path) -> None:
    """Builds the wheelhouse for this Python (torch left out, as on the target), then a fresh
    venv with torch only installs the project from it with ``--no-index`` and runs it.
    Needs the package index once, for the downloads: minutes."""
    house = tmp_path / "wheelhouse"
    build = [sys.executable, str(ROOT / "scripts" / "wheelhouse.py"), "--dest", str(house)]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([*build, "--python-version", version], check=True)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    subprocess.run([python, "-m", "pip", "install", "--quiet", torch_pin], check=True)
    offline = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}
    subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--find-links", str(house),
         "ssprop-energy"],
        check=True,
        env=offline,
    )  # fmt: skip
    doctor = subprocess.run(
        [str(env_dir / "bin" / "ssprop-energy"), "doctor"], capture_output=True, text=True
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "codecarbon cpu" in doctor.stdout
    imported = "import ssprop_energy, fvcore, codecarbon; print(ssprop_energy.__file__)"
    where = subprocess.run(
        [python, "-c", imported], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert where.stdout.startswith(str(env_dir))  # the installed wheel, not this checkout
