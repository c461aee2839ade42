"""The report as one self-contained HTML page: no script, no network, every string escaped.

A Content-Security-Policy meta tag forbids every load (only inline styles are allowed), the
charts are inline SVG, and each number is its CSV value rounded to 4 significant digits.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real

import pandas as pd

from ..provenance import is_mixed
from .charts import Chart, render_charts
from .contents import ReportContents
from .shown import (
    METHOD_KEYS,
    METHOD_METRICS,
    PHASE_COLUMNS,
    PREDICTION_COLUMNS,
    RUN_COLUMNS,
    SETUP_KEYS,
    SETUP_METRICS,
    SIDE_BY_SIDE_KEYS,
    SIDE_BY_SIDE_METRICS,
    primary_key,
    with_primary,
    with_sources,
)

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px;padding:0 1rem;
color:#222;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
.headline{font-size:1.2rem;font-weight:600;background:#eef6ee;padding:.6rem .8rem;
border-left:4px solid #2a7a2a}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.2rem .4rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td.text{text-align:left}td.flag{background:#fde2c8;font-weight:600}
caption{text-align:left;font-size:.8rem;color:#555;padding:.2rem 0}
figure{margin:1rem 0}figcaption{font-size:.8rem;color:#555}svg{max-width:100%;height:auto}
.notes li{color:#8a4b00}
.grids{display:flex;flex-wrap:wrap;gap:1rem}.grids figure{margin:0;max-width:280px}
.grids img{width:256px;image-rendering:pixelated;border:1px solid #ccc}
"""
PROVENANCE_HELP = (
    "Provenance: measured = energy counter (NVML, RAPL); sampled = integrated power samples; "
    "split = counter energy split by time over windows shorter than the counter's update "
    "period; estimated = CodeCarbon's TDP-based model; unavailable = no figure. A total "
    "carries the weakest label of its parts; 'mixed: ...' and 'a vs b' flag figures of "
    "different provenance."
)
MISSING = "–"


def fmt(value: object) -> str:
    """A cell as shown: numbers to 4 significant digits, NaN as a dash, text escaped."""
    if value is None or value is pd.NA:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        number = float(value)
        return MISSING if math.isnan(number) else f"{number:.4g}"
    return html.escape(str(value)) or MISSING


def _cell(value: object, column: str) -> str:
    classes = []
    if isinstance(value, str):
        classes.append("text")
    if column.startswith("provenance") and is_mixed(value):
        classes.append("flag")
    attr = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attr}>{fmt(value)}</td>"


def table(frame: pd.DataFrame, columns: Sequence[str], caption: str) -> str:
    """An HTML table of ``columns`` (those present) with the CSV column names as headers."""
    present = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in present)
    body = "".join(
        "<tr>" + "".join(_cell(row[c], c) for c in present) + "</tr>" for _, row in frame.iterrows()
    )
    return (
        f'<div class="scroll"><table><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def mean_std_table(
    frame: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str], caption: str
) -> str:
    """Like :func:`table`, with one ``<metric>_mean ± <metric>_std`` cell per metric."""
    present = [m for m in metrics if f"{m}_mean" in frame.columns or m in frame.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (*keys, *present))
    rows = []
    for _, row in frame.iterrows():
        cells = [_cell(row[k], k) for k in keys if k in frame.columns]
        for m in present:
            if m in frame.columns:
                cells.append(_cell(row[m], m))
            else:
                std = row.get(f"{m}_std")
                spread = "" if fmt(std) == MISSING else f" ± {fmt(std)}"
                cells.append(f"<td>{fmt(row[f'{m}_mean'])}{spread}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _items(lines: Iterable[str], css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<ul{attr}>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def _tables(report: ReportContents) -> str:
    parts = [
        mean_std_table(
            report.methods,
            [*METHOD_KEYS, *primary_key(report.runs)],
            with_sources(with_primary(METHOD_METRICS, report.runs, keys=True), report.sources),
            "methods.csv: per method and setup, mean ± std over finished runs "
            f"(savings against {report.baseline} at the same seed and setup)",
        ),
    ]
    if not report.inference.empty:
        parts.append(
            mean_std_table(
                report.methods,
                SIDE_BY_SIDE_KEYS,
                SIDE_BY_SIDE_METRICS,
                "methods.csv: training (accuracy, FLOPs, time, energy, CO2) and the final "
                "model's inference (parameters, forward FLOPs per sample, latency per batch, "
                "time and energy per 1,000 samples; _b1: at batch 1, _btrain: at the training "
                "batch size; savings against the baseline at the same seed and setup) side by "
                "side, mean ± std over finished runs",
            )
        )
    predicted = "predicted_time_s" in report.runs and report.runs["predicted_time_s"].notna().any()
    run_columns = [
        c
        for c in with_primary(RUN_COLUMNS, report.runs)
        if predicted or c not in PREDICTION_COLUMNS
    ]
    parts.append(
        table(
            report.runs, with_sources(run_columns, report.sources), "summary.csv: one row per run"
        )
    )
    if not report.setups.empty and (report.setups["target_status"] != "no_target").any():
        ranked = report.setups.sort_values(["method_label", "rank"], kind="stable")
        parts.append(
            mean_std_table(
                ranked,
                SETUP_KEYS,
                SETUP_METRICS,
                f"setups.csv: cost of reaching accuracy {fmt(report.target_accuracy)}, ranked per "
                "method by energy (1 = least); setups that never reached it have no figures",
            )
        )
    parts.append(
        table(
            report.phases,
            with_sources(PHASE_COLUMNS, report.sources),
            "phases.csv: seconds, joules and FLOPs per run and phase",
        )
    )
    return "".join(parts)


SAMPLE_COLUMNS = (
    "run",
    "epoch",
    "val_denoise_loss",
    "fd_classifier",
    "s_per_64",
    "j_per_64",
    "provenance",
)
FD_HELP = (
    "fd_classifier: the Frechet distance between the samples and the real training images in "
    "the feature space of a small classifier this tool trains on the data set; it is not "
    "Inception FID and compares runs of one data set and tool version only. s_per_64 and "
    "j_per_64: seconds and joules to draw 64 samples at the run's sampling steps."
)


def _samples(grids: pd.DataFrame) -> str:
    """The generation runs' last sample grids side by side, and their scores."""
    figures = "".join(
        f'<figure><img alt="samples of {fmt(row.run)}" '
        f'src="data:image/png;base64,{row.png_base64}"><figcaption>{fmt(row.run)}, epoch '
        f"{int(row.epoch) + 1}</figcaption></figure>"
        for row in grids.itertuples()
    )
    shown = grids.assign(epoch=grids["epoch"] + 1)
    return (
        f'<div class="grids">{figures}</div>'
        + table(shown, SAMPLE_COLUMNS, "each run's last sample grid (epoch from 1)")
        + f"<p>{html.escape(FD_HELP)}</p>"
    )


def render_html(report: ReportContents, charts: Sequence[Chart] | None = None) -> str:
    """The whole page as a string (``charts``: those of :func:`render_charts`, drawn here
    when not given)."""
    title = f"ssprop-energy report: {report.title}"
    target = "none" if report.target_accuracy is None else fmt(report.target_accuracy)
    figures = "".join(
        f'<figure id="chart-{c.key}"><figcaption><b>{html.escape(c.title)}</b> '
        f"({html.escape(c.caption)})</figcaption>{c.svg}</figure>"
        for c in (render_charts(report) if charts is None else charts)
    )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="headline">{html.escape(report.headline)}</p>',
        _items(report.highlights[1:]),
        f"<p>Baseline: {html.escape(report.baseline)}; target accuracy: {target}; "
        f"runs: {len(report.runs)}.</p>",
    ]
    if report.notes:
        body.append(_section("Notes", _items(report.notes, "notes")))
    body.append(
        _section(
            "Environment",
            table(report.environment, list(report.environment.columns), "distinct environments")
            + table(report.energy_sources, list(report.energy_sources.columns), "energy sources")
            + f"<p>{html.escape(PROVENANCE_HELP)}</p>",
        )
    )
    if not report.grids.empty:
        body.append(_section("Samples", _samples(report.grids)))
    body.append(_section("Tables", _tables(report)))
    body.append(_section("Charts", figures))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


NOTEBOOK_METRICS = (
    "final_accuracy",
    "epochs_done",
    "time_s",
    "energy_j",
    "provenance",
    "flops_total",
    "flops_backward_saving_pct",
    "time_saving_pct",
    "energy_saving_pct",
    "provenance_energy_saving",
    "accuracy_change_points",
)


def notebook_html(report: ReportContents) -> str:
    """The report in a notebook: headline, highlights, notes, the methods table and the
    totals over the runs; the charts and every other table are in :func:`render_html`."""
    runs = report.runs
    finished = int((runs["status"] == "finished").sum())
    energy = runs["energy_j"].sum(skipna=False)
    totals = (
        f"{len(runs)} runs ({finished} finished), {fmt(runs['time_s'].sum())} s, "
        f"{fmt(energy)} J in total ({', '.join(report.sources) or 'no energy source'})"
    )
    parts = [
        f"<p><b>{html.escape(report.headline)}</b></p>",
        _items(report.highlights[1:]),
        f"<p>Baseline: {html.escape(report.baseline)}; {html.escape(totals)}.</p>",
        mean_std_table(
            report.methods,
            ["method_label", "setup", "n_runs", "n_finished", *primary_key(report.runs)],
            with_primary(NOTEBOOK_METRICS, report.runs, keys=True),
            "methods.csv: mean ± std over finished runs",
        ),
    ]
    if report.notes:
        parts.append("<p>Notes:</p>" + _items(report.notes))
    return "".join(parts)
