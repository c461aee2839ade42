"""Progress of a sweep: a rich live display on a terminal, a bar updated in place in a
Jupyter notebook, plain lines elsewhere, or nothing."""

from __future__ import annotations

import html
import math
import sys
import time
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ...store import epoch_number, setup_label
from ..run.outcome import RunOutcome, StepInfo
from ..runs import RunSpec


class Reporter(Protocol):
    def run_started(self, index: int, total: int, spec: RunSpec, run_dir: Any) -> None: ...
    def step(self, info: StepInfo) -> None: ...
    def epoch(self, row: dict[str, Any]) -> None: ...
    def run_ended(self, outcome: RunOutcome) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class QuietReporter:
    """Prints nothing."""

    def run_started(self, index: int, total: int, spec: RunSpec, run_dir: Any) -> None: ...
    def step(self, info: StepInfo) -> None: ...
    def epoch(self, row: dict[str, Any]) -> None: ...
    def run_ended(self, outcome: RunOutcome) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


def _validation(row: dict[str, Any]) -> str:
    """``val acc`` where the task measures accuracy, else its ``val_*`` metrics."""
    if "accuracy" in row:
        return f"val acc {row['accuracy']:.4f}"
    return ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))


def _epoch_line(row: dict[str, Any]) -> str:
    line = (
        f"epoch {epoch_number(int(row['epoch']))}: keep {row['keep']:.2f}, "
        f"loss {row['train_loss']:.4f}, {_validation(row)}, {row['time_s']:.1f} s"
    )
    joules = row["energy_j"]
    if not math.isfinite(joules):
        return f"{line}, energy unavailable"
    watts = f" ({joules / row['time_s']:.1f} W)" if row["time_s"] else ""
    return f"{line}, {joules:.1f} J{watts}"


class PlainReporter:
    """One line per run start, epoch and run end (for logs and pipes)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.prefix = ""

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def run_started(self, index: int, total: int, spec: RunSpec, run_dir: Any) -> None:
        self.prefix = f"[run {index}/{total} {spec.run_id}]"
        setup = "" if not spec.setup else f", {setup_label(spec.setup)}"
        self._print(f"{self.prefix} {spec.label}, seed {spec.seed}{setup}")

    def step(self, info: StepInfo) -> None: ...

    def epoch(self, row: dict[str, Any]) -> None:
        self._print(f"{self.prefix} {_epoch_line(row)}")

    def run_ended(self, outcome: RunOutcome) -> None:
        extra = f": {outcome.error}" if outcome.error else ""
        self._print(f"{self.prefix} {outcome.status} after {outcome.epochs_done} epochs{extra}")

    def message(self, text: str) -> None:
        self._print(text)

    def close(self) -> None: ...


class RichReporter(PlainReporter):
    """A live bar per run (epoch, step, ETA, keep, loss, mean watts of the epoch so far)
    above the epoch lines."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[steps]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task: Any = None
        self.epochs = 1
        self.last = 0.0

    def _print(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def run_started(self, index: int, total: int, spec: RunSpec, run_dir: Any) -> None:
        super().run_started(index, total, spec, run_dir)
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.epochs = spec.train.epochs
        self.task = self.progress.add_task(f"run {index}/{total}", total=None, status="", steps="")

    def step(self, info: StepInfo) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and info.step + 1 < info.steps:
            return
        self.last = now
        watts = f", {info.watts:.0f} W" if info.watts is not None else ""
        total, completed = info.steps * self.epochs, info.epoch * info.steps + info.step + 1
        self.progress.update(
            self.task,
            total=total,
            completed=completed,
            steps=f"{completed}/{total} steps",
            status=f"epoch {epoch_number(info.epoch)}/{self.epochs}, keep {info.keep:.2f}, "
            f"loss {info.loss:.4f}{watts}",
        )

    def close(self) -> None:
        self.progress.stop()


class NotebookReporter(PlainReporter):
    """In Jupyter: the epoch lines, and above them one progress bar with the run, epoch,
    steps, keep, loss and watts, updated in place through an IPython display handle (rich's
    live display would need ipywidgets)."""

    def __init__(self) -> None:
        super().__init__()
        from IPython.display import HTML, display  # present in every Jupyter kernel

        self._html = HTML
        self.handle = display(HTML("<p>starting the sweep</p>"), display_id=True)
        self.run = ""
        self.epochs = 1
        self.last = 0.0
        self.bar = ""

    def run_started(self, index: int, total: int, spec: RunSpec, run_dir: Any) -> None:
        super().run_started(index, total, spec, run_dir)
        self.run = f"run {index}/{total} {spec.run_id}"
        self.epochs = spec.train.epochs

    def step(self, info: StepInfo) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and info.step + 1 < info.steps:
            return
        self.last = now
        watts = f", {info.watts:.0f} W" if info.watts is not None else ""
        total, completed = info.steps * self.epochs, info.epoch * info.steps + info.step + 1
        status = (
            f"{self.run}: epoch {epoch_number(info.epoch)}/{self.epochs}, "
            f"{completed}/{total} steps, keep {info.keep:.2f}, loss {info.loss:.4f}{watts}"
        )
        self.bar = f'<progress value="{completed}" max="{total}"></progress> {html.escape(status)}'
        self.handle.update(self._html(self.bar))

    def close(self) -> None:
        self.handle.update(self._html(f"{self.bar or 'no run trained'}; sweep done"))


def in_notebook() -> bool:
    """True in a Jupyter kernel (rich's test: an IPython ZMQ shell, Colab, Databricks)."""
    return Console().is_jupyter


def default_reporter() -> Reporter:
    """A library call's progress: a bar in a notebook, nothing elsewhere."""
    return NotebookReporter() if in_notebook() else QuietReporter()


def make_reporter(quiet: bool) -> Reporter:
    """Rich on a terminal, plain lines otherwise, nothing with ``quiet``."""
    if quiet:
        return QuietReporter()
    return RichReporter() if sys.stdout.isatty() else PlainReporter()
