"""The notebook path: a small notebook executed in a real Jupyter kernel (nbclient), its
outputs checked: HTML tables with totals, a progress bar, the report object."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ssprop_energy.flops import count_flops
from ssprop_energy.harness.run.outcome import RunOutcome
from ssprop_energy.harness.sweep.runner import SweepResult
from ssprop_energy.models import build_model
from tests.support.harness_configs import write_config

CELLS = [
    "from ssprop_energy import EnergyMeter, build_model, count_flops, profile",
    'count_flops(build_model("cnn"), (2, 1, 8, 8))',
    "meter = EnergyMeter(codecarbon=False, interval_s=0.05)\nwith meter:\n"
    '    with meter.window("work"):\n        sum(range(100_000))\nmeter',
    'result = profile("model.yaml")\nresult',
    "result.report.headline",
    "result.report",
]


def _html(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def test_a_notebook_shows_tables_progress_and_the_report(tmp_path: Path) -> None:
    write_config(tmp_path)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    _, flops, meter, sweep, headline, report = notebook.cells
    assert "<table" in _html(flops) and "<td>total</td>" in _html(flops)
    assert "2 FLOPs per multiply-accumulate" in _html(flops)
    assert "<table" in _html(meter) and "sum of the windows" in _html(meter)
    progress = [o for o in sweep.outputs if o.output_type == "display_data"]
    assert progress and "<progress" in _html(sweep) and "epoch 2/2" in _html(sweep)
    stdout = "".join(o.get("text", "") for o in sweep.outputs if o.output_type == "stream")
    assert "epoch 1: keep" in stdout and "epoch 2: keep" in stdout  # epochs counted from 1
    assert "total: 2 trained" in _html(sweep) and "report.html" in _html(sweep)
    (text,) = [o.data["text/plain"] for o in headline.outputs]
    assert "dense" in text  # no energy source here (no RAPL, no CodeCarbon): no comparison
    assert text.strip("'") in _html(report) and "methods.csv" in _html(report)
    assert (tmp_path / "runs" / "tiny" / "figures" / "training.pdf").is_file()


def test_a_sweep_result_table_ends_with_its_totals() -> None:
    result = SweepResult(
        Path("runs/x"),
        outcomes=[
            RunOutcome("a", "finished", 2, 0.5, 10.0, 1.0),
            RunOutcome("b", "failed", 1, None, None, 0.5, "boom"),
        ],
        skipped=["c"],
    )
    total = result.table().iloc[-1]
    assert (total["run"], total["status"], total["epochs"]) == ("total: 2 trained", "1 finished", 3)
    assert total["energy_j"] is None and total["time_s"] == 1.5  # no partial sum of joules
    page = result._repr_html_()
    assert "skipped (already ended): c" in page and "<td>boom</td>" in page


def test_a_flop_report_shows_its_totals() -> None:
    report = count_flops(build_model("cnn"), (2, 1, 8, 8))
    total = report.totals_row().iloc[0]
    assert total["module"] == "total" and total["total"] == report.total
    assert f"<td>{report.backward}</td>" in report._repr_html_()
