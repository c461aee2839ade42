"""Validate ssprop-energy on a GPU machine in one command; write one summary of every figure.

    python3 scripts/gpu_check.py [--out gpu-check] [--wheelhouse wheelhouse]

Without a CUDA GPU it refuses: one ``error:`` line, exit status 2. With one it

1. installs the project from the working tree, with its dependencies from the wheelhouse and
   without network, where ``import ssprop_energy`` and its dependencies fail;
2. runs ``pytest -m gpu tests/gpu``, ``ssprop-energy doctor --json``, the benchmarks on CUDA
   (``sparse_backward``, ``epoch_time --amp``, ``meter_overhead --check-seconds 30``) and
   a two-epoch run of ``examples/gpu.yaml``;
3. writes ``OUT/gpu-check.json`` (the device, versions, and per step: command, exit status,
   seconds, and its figures: the tests' outcomes, the doctor's checks, the benchmarks'
   printed lines, the run's summary rows) and ``OUT/gpu-check.log`` (every step's output).

A failing step does not stop the others; the exit status is 1 when any failed. Standard
library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PROBE = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"
INSTALLED = "import ssprop_energy.cli, codecarbon, fvcore, pydantic, pynvml, yaml, hypothesis"
CLI = "from ssprop_energy.cli import main; main()"


def fail(message: str) -> None:
    """One ``error:`` line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def refuse_without_gpu() -> None:
    """Exit 2 with one line unless this interpreter's torch sees a CUDA GPU."""
    probe = subprocess.run([PY, "-c", PROBE], capture_output=True, text=True)
    if probe.returncode == 3:
        why = "torch sees none here (torch.cuda.is_available() is False)"
    elif probe.returncode != 0:
        why = f"{PY} cannot import torch"
    else:
        return
    fail(f"gpu-check needs a CUDA GPU, and {why}; run it on a GPU machine")


def install_if_needed(wheelhouse: Path, log: list[str]) -> dict[str, Any]:
    """The project from this tree, its dependencies from the wheelhouse, where missing."""
    if subprocess.run([PY, "-c", INSTALLED], capture_output=True).returncode == 0:
        return {"name": "install", "status": "already installed"}
    if not wheelhouse.is_dir():
        fail(
            f"--wheelhouse: no folder {wheelhouse}, and the project's dependencies are not "
            "installed; build it with `make wheelhouse PY=3.12` and carry it"
        )
    command = [PY, "-m", "pip", "install", "--no-index", "--find-links", str(wheelhouse)]
    command += ["--no-build-isolation", "-e", str(ROOT)]
    return run_step("install", command, log, 300)


def run_step(name: str, command: list[str], log: list[str], timeout_s: float) -> dict[str, Any]:
    """Run ``command`` from the repository root; its output goes to ``log``."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code = 124
        output = (exc.stdout or b"").decode() + f"\n(stopped after {timeout_s:g} s)"
    seconds = round(time.perf_counter() - start, 1)
    log.append(f"==== {name}: {' '.join(command)} (exit {code}, {seconds} s)\n{output}")
    return {
        "name": name,
        "command": " ".join(command),
        "exit_code": code,
        "seconds": seconds,
        "lines": [line for line in output.splitlines() if line.strip()],
    }


def pytest_outcomes(junit: Path) -> dict[str, Any]:
    """Counts and each test's outcome (and message) from pytest's JUnit XML."""
    if not junit.is_file():
        return {}
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = f"{kind}: {found.get('message', '')}"[:500]
        outcomes[test] = outcome
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        key = outcome.split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return {"counts": counts, "tests": outcomes}


def two_epoch_config(work: Path) -> Path:
    """examples/gpu.yaml with ``epochs: 2`` and its output under ``work``."""
    import yaml  # installed by now

    config = yaml.safe_load((ROOT / "examples" / "gpu.yaml").read_text())
    config["train"]["epochs"] = 2
    config["output"] = str(work / "runs")
    path = work / "gpu-2-epochs.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def summary_rows(work: Path) -> list[dict[str, str]]:
    found = sorted((work / "runs").glob("*/summary.csv"))
    if not found:
        return []
    with found[0].open(newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gpu-check")
    parser.add_argument("--wheelhouse", type=Path, default=ROOT / "wheelhouse")
    args = parser.parse_args()
    refuse_without_gpu()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    log: list[str] = []
    steps: list[dict[str, Any]] = []

    def record(step: dict[str, Any]) -> dict[str, Any]:
        """Add a step and rewrite both files, so a run cut short still leaves its figures."""
        steps.append(step)
        failed = [s["name"] for s in steps if s.get("exit_code", 0) != 0]
        summary = {"failed": failed, "work_folder": str(work), "steps": steps}
        (args.out / "gpu-check.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.out / "gpu-check.log").write_text("\n".join(log))
        return step

    record(install_if_needed(args.wheelhouse, log))
    record(run_step("versions", [PY, "-c", CLI, "env", "--no-codecarbon"], log, 60))
    junit, doctor = work / "pytest.xml", work / "doctor.json"
    tests = run_step(
        "pytest -m gpu",
        [PY, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-rs", f"--junitxml={junit}"],
        log,
        300,
    )
    record(tests | {"figures": pytest_outcomes(junit)})
    check = run_step("doctor", [PY, "-c", CLI, "doctor", "--json", str(doctor)], log, 180)
    record(check | {"figures": json.loads(doctor.read_text()) if doctor.is_file() else {}})
    benchmarks = {
        "sparse_backward": ["--device", "cuda"],
        "epoch_time": ["--device", "cuda", "--amp"],
        "meter_overhead": ["--device", "cuda", "--check-seconds", "30"],
    }
    for name, options in benchmarks.items():
        record(run_step(name, [PY, f"benchmarks/{name}.py", *options], log, 240))
    command = [PY, "-c", CLI, "profile", str(two_epoch_config(work))]
    profile = run_step("examples/gpu.yaml, 2 epochs", command, log, 400)
    record(profile | {"figures": {"summary": summary_rows(work)}})
    failed = [s["name"] for s in steps if s.get("exit_code", 0) != 0]
    for step in steps:
        print(f"{step['name']}: exit {step.get('exit_code', 0)}, {step.get('seconds', 0)} s")
    print(f"summary: {args.out / 'gpu-check.json'}; failed: {', '.join(failed) or 'none'}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
