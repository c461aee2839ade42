"""Run a whole config: plan the runs, skip finished ones, train the rest."""

from __future__ import annotations

import html
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from ...data import Dataset
from ...errors import UserError
from ...flops import training_flops
from ...store import (
    CONFIG,
    SETTLED,
    EstimateMeta,
    RunClaimed,
    RunLock,
    atomic_write_text,
    is_run_dir,
    load_run,
    read_estimates,
    setup_label,
    write_matrix,
)
from ..calibration.phases import calibrate_sweep_phases
from ..config import ProfileConfig, sweep_folder
from ..ranks.group import RankGroup
from ..ranks.launch import check_distributable
from ..run.build import build_run, init_weights, load_run_data
from ..run.outcome import RunOutcome
from ..run.trainer import run_training
from ..runs import RunSpec, plan_runs
from .progress import Reporter, default_reporter
from .replace import discard, put_back, remove_if_empty, set_aside
from .shard import Shard, matrix_table, shard_runs
from .signals import Terminated, stop_on_signals, stop_signal

RESULT_COLUMNS = ("run", "status", "epochs", "accuracy", "energy_j", "time_s", "error")


@dataclass
class SweepResult:
    """What a profile call did. ``stopped_by``: the signal that stopped the sweep (SIGINT for
    Ctrl-C), None when it ran to the end."""

    sweep_dir: Path
    outcomes: list[RunOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    stopped_by: int | None = None
    current: str | None = None
    """The run being trained (when the sweep was stopped: the interrupted run)."""

    @property
    def interrupted(self) -> bool:
        return self.stopped_by is not None

    @property
    def failed(self) -> list[str]:
        """Runs of this call that failed, and damaged runs left untouched."""
        return [o.run_id for o in self.outcomes if o.status == "failed"] + self.damaged

    def table(self) -> pd.DataFrame:
        """One row per run this call trained, and a last row of totals."""
        rows = [
            {
                "run": o.run_id,
                "status": o.status,
                "epochs": o.epochs_done,
                "accuracy": o.accuracy,
                "energy_j": o.energy_j,
                "time_s": o.time_s,
                "error": o.error or "",
            }
            for o in self.outcomes
        ]
        table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS), dtype=object)
        energies = [o.energy_j for o in self.outcomes]
        total = {
            "run": f"total: {len(rows)} trained",
            "status": f"{sum(o.status == 'finished' for o in self.outcomes)} finished",
            "epochs": sum(o.epochs_done for o in self.outcomes),
            "accuracy": None,
            "energy_j": None if None in energies else sum(e for e in energies if e is not None),
            "time_s": sum(o.time_s for o in self.outcomes),
            "error": "",
        }
        return pd.concat([table, pd.DataFrame([total], dtype=object)], ignore_index=True)

    def _repr_html_(self) -> str:
        """The runs of this call with their totals (for Jupyter)."""
        others = {
            "skipped (already ended)": self.skipped,
            "claimed by another process": self.claimed,
            "damaged, left untouched": self.damaged,
        }
        lines = [f"{name}: {', '.join(ids)}" for name, ids in others.items() if ids]
        if self.interrupted:
            lines.append(f"stopped by signal {self.stopped_by}; rerun to resume")
        return (
            f"<p>Sweep {html.escape(str(self.sweep_dir))}</p>"
            + self.table().to_html(index=False, na_rep="–", float_format="{:.4g}".format)
            + "".join(f"<p>{html.escape(line)}</p>" for line in lines)
        )

    @property
    def exit_code(self) -> int:
        """128 + the signal that stopped the sweep; 1 when a run failed or is damaged; else 0."""
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return 1 if self.failed else 0


def select_runs(runs: list[RunSpec], only: list[str] | None, max_runs: int | None) -> list[RunSpec]:
    """Runs whose id starts with one of ``only``, then at most ``max_runs`` of them."""
    if only:
        chosen = [r for r in runs if any(r.run_id.startswith(o) for o in only)]
        if not chosen:
            raise UserError(f"--only: no run id starts with {', '.join(only)} (see --dry-run)")
        runs = chosen
    if max_runs is not None:
        if max_runs < 1:
            raise UserError(f"--max-runs: must be >= 1, got {max_runs}")
        runs = runs[:max_runs]
    return runs


def _prepare_output(cfg: ProfileConfig, sweep_dir: Path, planned: list[RunSpec]) -> None:
    """The resolved config and the planned matrix (the same in every process of a sweep)."""
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    atomic_write_text(sweep_dir / CONFIG, text)
    write_matrix(sweep_dir, matrix_table(planned))


def run_sweep(
    cfg: ProfileConfig,
    *,
    out: Path | None = None,
    only: list[str] | None = None,
    max_runs: int | None = None,
    reporter: Reporter | None = None,
    source: str = "config",
    shard: Shard | None = None,
    group: RankGroup | None = None,
) -> SweepResult:
    """Train every planned run not yet ended; ``only`` reruns the named runs from scratch;
    ``shard`` keeps only its part of the matrix (``harness.sweep.shard``; ``only`` and
    ``max_runs`` then choose within it). ``group``: this process is one rank of
    distributed runs (``harness.ranks``): rank 0 claims each run and tells the other
    ranks whether to train it with it; only rank 0 writes.

    Each run is claimed first (``store.RunLock``): a run another live process holds is
    skipped. A damaged run is left untouched unless ``only`` names it. Ctrl-C, SIGTERM and
    SIGHUP mark the current run ``interrupted`` and stop the sweep cleanly; finished epochs
    and runs are kept, and a later call resumes from the last finished epoch. A run listed
    in the sweep folder's estimate.csv (``ssprop-energy estimate``) keeps its prediction in
    its meta.json; a damaged estimate.csv is a UserError before anything is trained. Without
    a ``reporter`` it shows a progress bar in a Jupyter notebook and prints nothing elsewhere.
    """
    reporter = reporter or default_reporter()
    sweep_dir = sweep_folder(cfg, out)
    planned = plan_runs(cfg, source)
    runs = select_runs(shard_runs(planned, shard), only, max_runs)
    estimates = read_estimates(sweep_dir)
    if group is not None:
        check_distributable(cfg)
    main = group is None or group.is_main
    if main:
        _prepare_output(cfg, sweep_dir, planned)
    result = SweepResult(sweep_dir)
    with stop_on_signals():
        try:
            phases = _calibrate_phases_first(cfg, runs, sweep_dir, bool(only), reporter)
            for index, spec in enumerate(runs, 1):
                recorded = (estimates.get(spec.run_id), phases.get(spec.run_id))
                position = (index, len(runs))
                if not main:
                    _follow(spec, sweep_dir, recorded, group, result)
                    continue
                started = _claim_and_run(
                    spec, sweep_dir, position, bool(only), reporter, result, recorded, group
                )
                if group is not None and not started:
                    group.agree(False)
        except KeyboardInterrupt as exc:
            result.stopped_by = stop_signal(exc)
            cause = "" if isinstance(exc, Terminated) else " (Ctrl-C)"
            run = f"run {result.current} keeps its finished epochs" if result.current else "no run"
            reporter.message(
                f"interrupted by {signal.Signals(result.stopped_by).name}{cause}: {run}; "
                "rerun the same command to resume"
            )
    reporter.close()
    return result


def _follow(
    spec: RunSpec,
    sweep_dir: Path,
    recorded: tuple[EstimateMeta | None, dict[str, Any] | None],
    group: RankGroup | None,
    result: SweepResult,
) -> None:
    """A rank other than 0: train the run with rank 0 when rank 0 says so."""
    assert group is not None  # only ranks of a group follow
    if group.agree(False):
        result.current = spec.run_id
        result.outcomes.append(
            run_training(spec, sweep_dir / spec.run_id, None, None, *recorded, group)
        )
        result.current = None


def _calibrate_phases_first(
    cfg: ProfileConfig, runs: list[RunSpec], sweep_dir: Path, rerun: bool, reporter: Reporter
) -> dict[str, dict[str, Any]]:
    """With ``energy.phase_calibration``: calibrate the phases of the runs still to train
    (:mod:`.phases`), once, before training; each run's meta.json entry by run id."""
    if not cfg.energy.phase_calibration:
        return {}
    pending = [s for s in runs if rerun or not _settled(sweep_dir / s.run_id)]
    if not pending:
        return {}
    reporter.message(f"phase calibration: {len(pending)} runs to train")
    phases, entries = calibrate_sweep_phases(pending, sweep_dir)
    if phases.calibrated:
        reporter.message(
            f"phase calibration: {phases.calibrated} unit{'s' if phases.calibrated != 1 else ''} "
            f"in {phases.time_s:.1f} s, "
            f"{phases.energy_j:.4g} J ({phases.provenance}); {phases.path}"
        )
    else:
        reporter.message(f"phase calibration: every unit reused from {phases.path}")
    return entries


def _settled(run_dir: Path) -> bool:
    """True for a stored run a sweep does not train again."""
    if not is_run_dir(run_dir):
        return False
    record = load_run(run_dir)
    return record.damage is None and record.status in SETTLED


def _claim_and_run(
    spec: RunSpec,
    sweep_dir: Path,
    position: tuple[int, int],
    rerun: bool,
    reporter: Reporter,
    result: SweepResult,
    recorded: tuple[EstimateMeta | None, dict[str, Any] | None],
    group: RankGroup | None = None,
) -> bool:
    """Claim one run and train it; a run that waits for another's weights is not started,
    one that another live process holds is skipped. True when training started."""
    tag = f"[run {position[0]}/{position[1]} {spec.run_id}]"
    run_dir = sweep_dir / spec.run_id
    source = init_weights(spec, run_dir)
    if source is not None and not source.is_file():
        waiting = f"needs the final weights of run {spec.init_run} ({spec.method.init_from})"
        reporter.message(f"{tag} not started: {waiting}")
        result.outcomes.append(RunOutcome(spec.run_id, "pending", 0, None, None, 0.0, waiting))
        return False
    try:
        lock = RunLock.claim(run_dir)
    except RunClaimed as exc:
        result.claimed.append(spec.run_id)
        reporter.message(f"{tag} skipped: claimed by {exc.holder.describe()}")
        return False
    if lock.note is not None:
        reporter.message(f"{tag} {lock.note}")
    try:
        with lock:
            return _run_claimed(spec, run_dir, position, rerun, reporter, result, recorded, group)
    finally:
        remove_if_empty(run_dir)


def _run_claimed(
    spec: RunSpec,
    run_dir: Path,
    position: tuple[int, int],
    rerun: bool,
    reporter: Reporter,
    result: SweepResult,
    recorded: tuple[EstimateMeta | None, dict[str, Any] | None],
    group: RankGroup | None = None,
) -> bool:
    """Train one claimed run, unless it is settled (skipped) or damaged and not ``rerun``;
    ``recorded``: its estimate and phase calibration entries for meta.json. True when
    training started (after telling the other ranks of ``group`` to join)."""
    tag = f"[run {position[0]}/{position[1]} {spec.run_id}]"
    record = load_run(run_dir) if is_run_dir(run_dir) else None
    if record is not None and not rerun:
        if record.damage is not None:
            result.damaged.append(spec.run_id)
            reporter.message(
                f"{tag} not touched: damaged ({record.damage}); "
                f"to train it again from scratch, name it with --only {spec.run_id}"
            )
            return False
        if record.status in SETTLED:
            result.skipped.append(spec.run_id)
            reporter.message(f"{tag} already {record.status}: skipped")
            return False
    replaced = set_aside(run_dir) if rerun else None
    if group is not None:
        group.agree(True)
    reporter.run_started(position[0], position[1], spec, run_dir)
    result.current = spec.run_id
    try:
        outcome = run_training(spec, run_dir, reporter.step, reporter.epoch, *recorded, group)
    except UserError:
        put_back(run_dir, replaced)
        raise
    finally:
        discard(replaced)
    result.current = None
    result.outcomes.append(outcome)
    reporter.run_ended(outcome)
    return True


def dry_run_table(
    cfg: ProfileConfig, source: str = "config", shard: Shard | None = None
) -> pd.DataFrame:
    """The run matrix (``shard``'s part of it) with analytic FLOPs and mean keep, without
    training."""
    rows = []
    data_cache: dict[str, Dataset] = {}
    for spec in shard_runs(plan_runs(cfg, source), shard):
        key = spec.data.model_dump_json() + spec.task.model_dump_json()
        if key not in data_cache:
            data_cache[key] = load_run_data(spec)
        ctx = build_run(spec, data_cache[key], torch.device("cpu"))
        steps = ctx.data.steps_per_epoch(spec.data.batch_size)
        batch = (spec.data.batch_size, *ctx.data.input_shape)
        run = training_flops(ctx.model, batch, ctx.method.scheduler, spec.train.epochs, steps)
        total = run[run.epoch == "total"].iloc[0]
        first = run.iloc[0]
        rows.append(
            {
                "run_id": spec.run_id,
                "method": spec.label,
                "seed": spec.seed,
                "setup": setup_label(spec.setup),
                "epochs": spec.train.epochs,
                "steps_per_epoch": steps,
                "mean_keep": float(total["mean_keep"]),
                "flops_forward_per_step": int(first["flops_forward"]) // steps,
                "flops_backward_dense_per_step": int(first["flops_backward_dense"]) // steps,
                "flops_backward_run": int(total["flops_backward"]),
                "backward_saving_pct": float(total["backward_saving_pct"]),
            }
        )
    return pd.DataFrame(rows)
