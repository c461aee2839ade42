"""Suite-wide fixtures.

Every test runs torch on one thread (the previous count restored afterwards): the suite's
models are small, a step is quickest on one thread, and the machine may be shared. This is
the one place for it. ``OMP_NUM_THREADS=1`` during the test gives the processes a test
starts one thread too, so a run trained in a child process adds up its floats in the same
order as the same run trained in the test (tests/harness/test_fault_injection.py compares
them exactly).

Rendering a chart's PDF (fonts subset and embedded) costs about as much as drawing the chart,
and almost every harness and report test writes a report. Tests marked ``figures`` get the real
PDF files; elsewhere each PDF is a one-line stand-in, so the suite stays fast. The SVG of
every chart, which the page embeds, is always real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from ssprop_energy.reports.charts import Chart


@pytest.fixture(autouse=True)
def _stand_in_pdf(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("figures") is None:
        monkeypatch.setattr(Chart, "pdf", lambda self: b"%PDF-1.4 stand-in: " + self.key.encode())


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
