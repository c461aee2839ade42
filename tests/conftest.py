"""Suite-wide fixtures.

Rendering a chart's PDF (fonts subset and embedded) costs about as much as drawing the chart,
and almost every harness and report test writes a report. Tests marked ``figures`` get the real
PDF files; elsewhere each PDF is a one-line stand-in, so the suite stays fast. The SVG of
every chart, which the page embeds, is always real."""

from __future__ import annotations

import pytest

from ssprop_energy.reports.charts import Chart


@pytest.fixture(autouse=True)
def _stand_in_pdf(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("figures") is None:
        monkeypatch.setattr(Chart, "pdf", lambda self: b"%PDF-1.4 stand-in: " + self.key.encode())
