"""The report opened in a real headless Chromium (Debian's ``chromium`` package)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from ssprop_energy.reports import build_report, write_report
from tests.support.report_store import grid_store, two_method_store

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "report.png"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium: apt-get install -y chromium",
    ),
]


def test_the_report_opens_offline_without_errors(tmp_path: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright: pip install -e '.[test]'"
    )
    sweep = two_method_store(tmp_path / "runs")
    grid = grid_store(tmp_path / "runs")
    write_report(build_report([sweep, grid], target_accuracy=0.6), tmp_path / "out")
    page_url = (tmp_path / "out" / "report.html").as_uri()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    errors: list[str] = []
    requests: list[str] = []
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile,  # a fresh --user-data-dir
                executable_path=str(CHROMIUM),
                args=FLAGS,
                viewport={"width": 1300, "height": 900},
            )
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_url, wait_until="load")
            tables = page.locator("table").count()
            charts = page.locator("figure svg").count()
            chart_ids = page.eval_on_selector_all("figure", "fs => fs.map(f => f.id)")
            headline = page.locator(".headline").inner_text()
            width = page.eval_on_selector("#chart-heatmap svg", "s => s.getBBox().width")
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    assert requests and all(url == page_url or url.startswith("data:") for url in requests)
    assert tables >= 6  # environment, sources, methods, summary, setups, phases
    assert charts == 8 and width > 100
    assert set(chart_ids) == {
        f"chart-{k}"
        for k in (
            "training",
            "energy",
            "tradeoff",
            "power",
            "phases",
            "savings",
            "target",
            "heatmap",
        )
    }
    assert "backward FLOPs" in headline
    assert ARTIFACT.stat().st_size > 10_000
