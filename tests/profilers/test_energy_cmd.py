from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from ssprop_energy.cli import app

runner = CliRunner()


def test_env_lists_sources_with_reasons() -> None:
    result = runner.invoke(app, ["env", "--no-codecarbon", "--country", "FRA"])
    assert result.exit_code == 0, result.output
    for expected in ("source", "provenance", "cpu", "dram", "carbon intensity (FRA)"):
        assert expected in result.output


def test_measure_passes_the_exit_code_through_and_writes_csv(tmp_path: Path) -> None:
    csv = tmp_path / "out" / "energy.csv"
    code = "import sys, time; time.sleep(0.2); sys.exit(3)"
    result = runner.invoke(
        app, ["measure", "--no-codecarbon", "--csv", str(csv), "--", sys.executable, "-c", code]
    )
    assert result.exit_code == 3, result.output
    assert "time_s" in result.output and "provenance" in result.output
    row = pd.read_csv(csv).iloc[0]
    assert row["window"] == "command" and row["exit_code"] == 3
    assert row["time_s"] >= 0.2
    assert "-c" in row["command"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["measure", "--no-codecarbon", "--", "no-such-command-xyz"], "command not found"),
        (["measure", "--country", "ZZZ", "--", "true"], "country"),
        (["env", "--country", "ZZZ"], "country"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_unwritable_csv_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    csv = blocker / "energy.csv"
    result = runner.invoke(
        app, ["measure", "--no-codecarbon", "--csv", str(csv), "--", sys.executable, "-c", ""]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {blocker}: cannot write results")
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [blocker]


def test_measure_refuses_a_file_it_cannot_execute(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")  # not executable
    result = runner.invoke(app, ["measure", "--no-codecarbon", "--", str(script)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {script}: cannot run it (Permission denied)"


def test_measure_writes_csv_only_to_a_file_path(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["measure", "--no-codecarbon", "--csv", str(tmp_path), "--", sys.executable, "-c", ""]
    )
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"error: --csv: {tmp_path} is a folder; give the path of a CSV file"
    )
    assert list(tmp_path.iterdir()) == [] and not list(tmp_path.parent.glob(f".{tmp_path.name}*"))


def test_a_child_killed_by_a_signal_exits_128_plus_the_signal() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    result = runner.invoke(app, ["measure", "--no-codecarbon", "--", sys.executable, "-c", code])
    assert result.exit_code == 137


def test_codecarbon_figure_says_how_far_from_the_meter_and_why() -> None:
    from ssprop_energy.cli.energy_cmd import codecarbon_comparison

    # kWh: CPU 1e-6 (3.6 J), RAM 0.5e-6 (1.8 J), no GPU; 5.4 J in all against the meter's 2 J
    cc = {"cpu_energy": 1e-6, "ram_energy": 0.5e-6, "gpu_energy": 0.0}
    line = codecarbon_comparison({**cc, "energy_consumed": 1.5e-6, "emissions": 2e-7}, 2.0)
    assert line.startswith(
        "CodeCarbon's own figure (not the one to quote): energy_j 5.400 (CPU 3.600, RAM 1.800, "
        "GPU 0.000), emissions_kg 2.000e-07; 2.70 times the meter's. It differs because"
    )
    assert "over the meter's whole life" in line and "adds RAM power" in line
    assert "the meter has no figure" in codecarbon_comparison(
        {**cc, "energy_consumed": 1.5e-6, "emissions": 0.0}, None
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_to_measure_is_forwarded_and_the_figures_printed(signum: int, code: int) -> None:
    """SIGTERM or SIGHUP to `measure`: the command gets it, `measure` waits for it, prints
    its figures and exits 128 + the signal; the command is not left running."""
    script = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    measure = subprocess.Popen(
        [sys.executable, "-m", "ssprop_energy", "measure", "--no-codecarbon", "--",
         sys.executable, "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert measure.stdout is not None
        # the child's pid is the first line that is a number (an older pynvml may warn first)
        first = iter(measure.stdout.readline, "")
        child = int(next(line for line in first if line.strip().isdigit()))
        measure.send_signal(signum)
        output = measure.communicate(timeout=60)[0]
    finally:
        if measure.poll() is None:
            os.killpg(measure.pid, signal.SIGKILL)
            measure.wait()
    assert measure.returncode == code, output
    assert "time_s: " in output and "Traceback" not in output
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
