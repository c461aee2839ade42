"""What every chart of the report shares: the style, the ``Chart`` record, a new figure,
each run's colour, line style and marker, the fitted figure legend and one line per run.

Text stays SVG text (``svg.fonttype: none``) and math parsing is off, so a run name is drawn
literally and matplotlib's SVG writer escapes it. Every run has one colour per method label
and one line style per seed (markers tell sweep points apart), in every chart; epochs are
numbered from 1, as in epochs.csv. Legends are fitted inside the figure (fewer columns, then
a wider figure), never clipped.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "svg.image_inline": True,  # the heat map's raster stays in the page as a data: URI
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 7,
}
NOT_REACHED_COLOR = "#d9d9d9"
BEFORE_PRUNING_COLOR = "#bdbdbd"
SAVING_LABELS = {
    "flops_backward_saving_pct": "backward FLOPs",
    "flops_saving_pct": "total FLOPs",
    "time_saving_pct": "time",
    "energy_saving_pct": "energy",
    "emissions_saving_pct": "emissions",
}


PDF_STYLE: dict[RcKeyType, Any] = {"pdf.fonttype": 42}
"""TrueType fonts embedded in the PDF files (what journals ask for), not Type 3."""
LINE_STYLES = ("-", "--", ":", "-.")
MIN_AXES_HEIGHT = 1.2
"""The least height (inches) of a plot beside its figure's legend."""
MAX_GROWTH_STEPS = 20
"""How often a figure may grow for its legend (each step adds what still sticks out)."""
TICK_WIDTH = 24
"""Characters per line of a bar group's label."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class Chart:
    """One figure of the report: an id, a title, the CSV columns it plots, the SVG (for the
    page and ``figures/``) and the figure, drawn as PDF on demand (``figures/``)."""

    key: str
    title: str
    caption: str
    svg: str
    figure: Figure

    def pdf(self) -> bytes:
        """The chart as a PDF file (fonts embedded as TrueType, no creation date)."""
        buffer = io.BytesIO()
        with mpl.rc_context(STYLE | PDF_STYLE):
            self.figure.savefig(buffer, format="pdf", metadata={"CreationDate": None})
        return buffer.getvalue()


def new_figure(rows: int = 1, cols: int = 1, height: float = 3.2) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(4.6 * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, list(axes.flat)


def palette(count: int) -> list[tuple[float, ...]]:
    """Distinct colours: tab10, or tab20 beyond ten (colours cycle beyond twenty)."""
    colormap = mpl.colormaps["tab10" if count <= 10 else "tab20"]
    size = 10 if count <= 10 else 20
    return [tuple(colormap(i % size)[:3]) for i in range(count)]


@dataclass(frozen=True)
class RunStyle:
    """How one run is drawn: its method's colour, its seed's line style, its setup's marker."""

    color: tuple[float, ...]
    linestyle: str
    marker: str


def run_styles(runs: pd.DataFrame) -> dict[str, RunStyle]:
    """Each run's style: the colour of its method label, the line style of its seed and
    the marker of its sweep point (in order of first appearance in summary.csv)."""
    labels = list(dict.fromkeys(runs["method_label"]))
    seeds = list(dict.fromkeys(runs["seed"]))
    setups = list(dict.fromkeys(runs["setup"]))
    colors = palette(len(labels))
    return {
        str(row["run"]): RunStyle(
            colors[labels.index(row["method_label"])],
            LINE_STYLES[seeds.index(row["seed"]) % len(LINE_STYLES)],
            MARKERS[setups.index(row["setup"]) % len(MARKERS)],
        )
        for _, row in runs.iterrows()
    }


def _legend_overflow(fig: Figure) -> tuple[float, float]:
    """How far (inches) the figure legend sticks out of the figure, across and down; down
    also counts what the plots lack of ``MIN_AXES_HEIGHT`` beside a tall legend."""
    with warnings.catch_warnings():  # constrained layout gives up while the legend is too tall
        warnings.filterwarnings("ignore", "constrained_layout not applied")
        fig.draw_without_rendering()
    box, figure = fig.legends[0].get_window_extent(), fig.bbox
    plots = min(ax.get_window_extent().height for ax in fig.axes) / fig.dpi
    across = max(0.0, figure.x0 - box.x0, box.x1 - figure.x1) / fig.dpi
    down = max(0.0, figure.y0 - box.y0, box.y1 - figure.y1) / fig.dpi
    return across, max(down, MIN_AXES_HEIGHT - plots, 0.0)


def fit_legend(fig: Figure, count: int) -> None:
    """One legend for the figure, below the plots, so it never hides a curve; fewer
    columns, then a wider or taller figure, until it lies inside the figure."""
    if not count:
        return
    for ncols in range(min(3, count), 0, -1):
        if fig.legends:
            fig.legends[0].remove()
        fig.legend(loc="outside lower center", ncols=ncols, frameon=False)
        if _legend_overflow(fig) == (0.0, 0.0):
            return
    for _ in range(MAX_GROWTH_STEPS):
        across, down = _legend_overflow(fig)
        if not (across or down):
            return
        width, height = fig.get_size_inches()
        fig.set_size_inches(
            width + 2 * across + 0.2 if across else width, height + down + 0.2 if down else height
        )


def per_run(
    ax: Axes,
    epochs: pd.DataFrame,
    styles: dict[str, RunStyle],
    y: str,
    ylabel: str,
    labelled: bool = True,
    x: str = "epoch",
) -> None:
    """One line per run in its style; ``labelled`` lines enter the figure legend."""
    for run, rows in epochs.groupby("run", sort=False):
        style = styles[str(run)]
        ax.plot(
            rows[x],
            rows[y],
            marker=style.marker,
            markersize=3,
            linestyle=style.linestyle,
            color=style.color,
            label=str(run) if labelled else "_nolegend_",
        )
    if x == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (from 1)")
    ax.set_ylabel(ylabel)
