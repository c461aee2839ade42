from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ssprop_energy.reports import build_report, write_report
from ssprop_energy.reports.html import fmt, render_html
from tests.support.html_tables import Tables
from tests.support.report_store import epoch_rows, grid_store, two_method_store, write_run

EVIL = "<script>alert(1)</script>"


def _page(tmp_path: Path, sweep: str = "demo") -> tuple[str, Path]:
    out = two_method_store(tmp_path / "runs", sweep=sweep)
    write_report(build_report([out], target_accuracy=0.6), out)
    return (out / "report.html").read_text(encoding="utf-8"), out


def test_every_summary_cell_is_its_csv_value_rounded(tmp_path: Path) -> None:
    page, out = _page(tmp_path)
    parser = Tables()
    parser.feed(page)
    table = next(t for t in parser.tables if t["caption"].startswith("summary.csv"))
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""])
    assert len(table["rows"]) == len(summary) == 5
    for shown, (_, stored) in zip(table["rows"], summary.iterrows(), strict=True):
        for column, text in zip(table["head"], shown, strict=True):
            assert text == fmt(stored[column]).replace("&amp;", "&"), column


def test_every_method_cell_is_its_csv_mean_and_std(tmp_path: Path) -> None:
    page, out = _page(tmp_path)
    parser = Tables()
    parser.feed(page)
    table = next(t for t in parser.tables if t["caption"].startswith("methods.csv"))
    methods = pd.read_csv(out / "methods.csv", keep_default_na=False, na_values=[""])
    checked = 0
    for shown, (_, stored) in zip(table["rows"], methods.iterrows(), strict=True):
        for column, text in zip(table["head"], shown, strict=True):
            if f"{column}_mean" in methods:
                mean, std = fmt(stored[f"{column}_mean"]), fmt(stored[f"{column}_std"])
                assert text == (mean if std == "–" else f"{mean} ± {std}"), column
                checked += 1
            else:
                assert text == fmt(stored[column]), column
    assert checked > 20


def test_user_strings_stay_text(tmp_path: Path) -> None:
    sweep = tmp_path / "runs" / "evil"
    rows = epoch_rows("a", [0.5, 0.6], 10.0, 1.0, 1.0, 1e6, 1.0)
    for seed, method in ((0, "dense"), (1, EVIL)):
        write_run(sweep, f"r{seed}", method=method, label=method, seed=0, epochs=rows, sweep=EVIL)
    write_report(build_report([sweep]), sweep)
    page = (sweep / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") >= 4  # title, tables and the SVG chart legends


def test_the_page_loads_nothing(tmp_path: Path) -> None:
    stores = [two_method_store(tmp_path / "a"), grid_store(tmp_path / "b")]
    page = render_html(build_report(stores))
    policies = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert len(policies) == 1  # the policy the browser applies, read from the page itself
    directives = dict(d.strip().partition(" ")[::2] for d in policies[0].split(";") if d.strip())
    assert directives == {
        "default-src": "'none'",  # no script, font, frame or fetch from anywhere
        "style-src": "'unsafe-inline'",
        "img-src": "data:",
        "base-uri": "'none'",
        "form-action": "'none'",
    }
    references = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert any(r.startswith("data:image/png;base64,") for r in references)  # the heat map
    assert all(r.startswith(("#", "data:image/png;base64,")) for r in references)
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert set(re.findall(r"https?://[^\"' )]+", page)) <= namespaces


def test_the_page_has_the_headline_tables_and_charts(tmp_path: Path) -> None:
    page, _ = _page(tmp_path)
    assert "ssprop keep=0.2 vs dense: saves 80% backward FLOPs, 20% time" in page
    for chart in ("training", "energy", "tradeoff", "power", "phases", "savings"):
        assert f'id="chart-{chart}"' in page
    assert page.count("<svg") == 6
    for caption in ("methods.csv", "summary.csv", "setups.csv", "phases.csv"):
        assert f"<caption>{caption}" in page
    assert "Fake GPU" in page and "550.1" in page and "2.13.0" in page


def test_the_page_stays_small(tmp_path: Path) -> None:
    page, _ = _page(tmp_path)
    assert len(page.encode()) < 1_000_000  # benchmarks/report_speed.py: 12 runs < 5 MB
