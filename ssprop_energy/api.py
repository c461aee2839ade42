"""``profile``: a config end to end from Python, as ``ssprop-energy profile`` runs it: train
and store the runs (:func:`~ssprop_energy.harness.sweep.runner.run_sweep`), then build and write
the sweep's report, and hand back both.

The same call launches a distributed run (``launch``: PyTorch's launcher starts the ranks,
each of which calls ``profile`` again), and, inside a rank (torchrun's environment), joins
the process group, trains as that rank and leaves the group (docs/distributed.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .harness.config import ProfileConfig, load_config
from .harness.ranks.environment import Ranks, ranks_from_env
from .harness.ranks.group import RankGroup
from .harness.ranks.launch import (
    Launch,
    LaunchFailed,
    LaunchStopped,
    RankFailed,
    check_distributable,
    die_with_launcher,
    launch_ranks,
    record_failure,
)
from .harness.sweep.progress import QuietReporter, Reporter
from .harness.sweep.runner import SweepResult, run_sweep, sweep_folder
from .harness.sweep.shard import Shard, parse_shard
from .reports import Report, sweep_report

__all__ = ["LaunchFailed", "LaunchStopped", "ProfileResult", "RankFailed", "profile"]


@dataclass
class ProfileResult(SweepResult):
    """A :class:`SweepResult` with the sweep's report: ``report`` is the :class:`Report`
    (every run in the folder, earlier calls' too; None when it holds no run, or when the
    call wrote none) and ``report_path`` its report.html. ``rank``: this process's rank in a
    distributed run (None on one process); ``launched``: this call launched the ranks that
    trained (their rank 0 wrote the report)."""

    report: Report | None = None
    report_path: Path | None = None
    rank: int | None = None
    launched: bool = False

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
    shard: str | Shard | None = None,
    launch: Launch | None = None,
    quiet: bool = False,
    report: bool = True,
) -> ProfileResult:
    """Train the config's runs not yet ended (see ``run_sweep``: a progress bar in a
    notebook without ``reporter``; none with ``quiet``), then write the sweep's report
    (``report``) and return it with the runs of this call. ``shard``: ``"K/N"``, only part
    K of N of the run matrix (as ``profile --shard``; the SLURM variables are not read here).

    ``launch``: train each run on that many processes through PyTorch's launcher (a config
    file only); a rank that does not end with status 0 is a :class:`LaunchFailed`. Inside
    a rank, an exception other than bad input is left where the launcher reads it and
    raised as a :class:`RankFailed`."""
    cfg = config if isinstance(config, ProfileConfig) else load_config(config)
    source = "config" if isinstance(config, ProfileConfig) else str(config)
    part = parse_shard(shard) if isinstance(shard, str) else shard
    reporter = QuietReporter() if quiet and reporter is None else reporter
    ranks = ranks_from_env()
    if launch is not None and ranks is None:
        return _launch(cfg, source, launch, (out, only, max_runs, quiet, part))
    result: SweepResult
    if ranks is not None:
        die_with_launcher()
        ranked = _as_rank(cfg, source, ranks, reporter, (out, only, max_runs, part))
        if ranks.rank != 0:
            return ranked
        result = ranked
    else:
        result = run_sweep(
            cfg, out=out, only=only, max_runs=max_runs, reporter=reporter, source=source,
            shard=part,
        )  # fmt: skip
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(SweepResult)}
    rank = None if ranks is None else ranks.rank
    if not report:
        return ProfileResult(**fields, rank=rank)
    written = sweep_report(result.sweep_dir)
    return ProfileResult(
        **fields,
        report=written,
        report_path=None if written is None else result.sweep_dir / "report.html",
        rank=rank,
    )


Options = tuple[Path | None, list[str] | None, int | None, Shard | None]


def _as_rank(
    cfg: ProfileConfig, source: str, ranks: Ranks, reporter: Reporter | None, options: Options
) -> ProfileResult:
    """Train the runs as this rank of a distributed run: join the group, train, leave."""
    out, only, max_runs, part = options
    group = RankGroup.start(ranks, cfg.train.device)
    try:
        result = run_sweep(
            cfg, out=out, only=only, max_runs=max_runs,
            reporter=reporter if group.is_main else QuietReporter(),
            source=source, shard=part, group=group,
        )  # fmt: skip
    except Exception as exc:
        if isinstance(exc, UserError):
            raise
        record_failure(exc)
        raise RankFailed(ranks.rank, exc) from exc
    finally:
        group.leave()
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(SweepResult)}
    return ProfileResult(**fields, rank=ranks.rank)


def _launch(
    cfg: ProfileConfig,
    source: str,
    how: Launch,
    options: tuple[Path | None, list[str] | None, int | None, bool, Shard | None],
) -> ProfileResult:
    """Launch the ranks, each running ``profile`` on the config file with these options."""
    if source == "config":
        raise UserError("launch: a distributed run needs a config file, not a ProfileConfig")
    check_distributable(cfg)
    out, only, max_runs, quiet, part = options
    args = [] if out is None else ["--out", str(out)]
    for prefix in only or []:
        args += ["--only", prefix]
    args += [] if max_runs is None else ["--max-runs", str(max_runs)]
    args += [] if part is None else ["--shard", str(part)]
    failure = launch_ranks(how, ["profile", source, *args, *(["--quiet"] if quiet else [])])
    if failure is not None:
        raise LaunchFailed(failure)
    return ProfileResult(sweep_folder(cfg, out), launched=True)
