"""``profile``: a config end to end from Python, as ``ssprop-energy profile`` runs it: train
and store the runs (:func:`~ssprop_energy.harness.sweep.runner.run_sweep`), then build and write
the sweep's report, and hand back both."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .harness.config import ProfileConfig, load_config
from .harness.sweep.progress import Reporter
from .harness.sweep.runner import SweepResult, run_sweep
from .harness.sweep.shard import parse_shard
from .reports import Report, sweep_report


@dataclass
class ProfileResult(SweepResult):
    """A :class:`SweepResult` with the sweep's report: ``report`` is the :class:`Report`
    (every run in the folder, earlier calls' too; None when it holds no run) and
    ``report_path`` its report.html."""

    report: Report | None = None
    report_path: Path | None = None

    def _repr_html_(self) -> str:
        page = "" if self.report is None else self.report._repr_html_()
        where = "" if self.report_path is None else f"<p>report: {self.report_path}</p>"
        return super()._repr_html_() + where + page


def profile(
    config: ProfileConfig | Path | str,
    *,
    out: Path | None = None,
    only: list[str] | None = None,
    max_runs: int | None = None,
    reporter: Reporter | None = None,
    shard: str | None = None,
) -> ProfileResult:
    """Train the config's runs not yet ended (see ``run_sweep``: a progress bar in a
    notebook without ``reporter``), then write the sweep's report and return it with the
    runs of this call. ``shard``: ``"K/N"``, only part K of N of the run matrix (as
    ``profile --shard``; the SLURM variables are not read here)."""
    cfg = config if isinstance(config, ProfileConfig) else load_config(config)
    source = "config" if isinstance(config, ProfileConfig) else str(config)
    part = None if shard is None else parse_shard(shard)
    result = run_sweep(
        cfg,
        out=out,
        only=only,
        max_runs=max_runs,
        reporter=reporter,
        source=source,
        shard=part,
    )
    report = sweep_report(result.sweep_dir)
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return ProfileResult(
        **fields,
        report=report,
        report_path=None if report is None else result.sweep_dir / "report.html",
    )
