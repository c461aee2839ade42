"""Run a whole config: plan the runs, skip finished ones, train the rest."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import yaml

from ..data import Dataset
from ..errors import UserError
from ..flops import training_flops
from ..store import (
    CONFIG,
    SETTLED,
    RunStore,
    atomic_write_text,
    is_run_dir,
    read_meta,
    setup_label,
)
from .build import build_run, init_weights, load_run_data
from .config import ProfileConfig
from .progress import QuietReporter, Reporter
from .runs import RunSpec, plan_runs
from .trainer import RunOutcome, run_training

REPLACED = ".replaced"  # where --only keeps the old run until the new one ends


@dataclass
class SweepResult:
    """What a profile call did."""

    sweep_dir: Path
    outcomes: list[RunOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False


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


def _prepare_output(cfg: ProfileConfig, sweep_dir: Path) -> None:
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    atomic_write_text(sweep_dir / CONFIG, text)


def _status(run_dir: Path) -> str | None:
    return str(read_meta(run_dir).get("status")) if is_run_dir(run_dir) else None


def run_sweep(
    cfg: ProfileConfig,
    *,
    out: Path | None = None,
    only: list[str] | None = None,
    max_runs: int | None = None,
    reporter: Reporter | None = None,
    source: str = "config",
) -> SweepResult:
    """Train every planned run not yet ended; ``only`` reruns the named runs from scratch.

    Ctrl-C marks the current run ``interrupted`` and stops the sweep cleanly; finished epochs
    and runs are kept, and a later call resumes from the last finished epoch.
    """
    reporter = reporter or QuietReporter()
    sweep_dir = (out or cfg.output) / cfg.name
    runs = select_runs(plan_runs(cfg, source), only, max_runs)
    _prepare_output(cfg, sweep_dir)
    result = SweepResult(sweep_dir)
    for index, spec in enumerate(runs, 1):
        run_dir = sweep_dir / spec.run_id
        source = init_weights(spec, run_dir)
        if source is not None and not source.is_file():
            waiting = f"needs the final weights of run {spec.init_run} ({spec.method.init_from})"
            reporter.message(f"[run {index}/{len(runs)} {spec.run_id}] not started: {waiting}")
            result.outcomes.append(RunOutcome(spec.run_id, "pending", 0, None, None, 0.0, waiting))
            continue
        replaced = _set_aside(run_dir) if only else None
        if _status(run_dir) in SETTLED:
            result.skipped.append(spec.run_id)
            reporter.message(
                f"[run {index}/{len(runs)} {spec.run_id}] already {_status(run_dir)}: skipped"
            )
            continue
        reporter.run_started(index, len(runs), spec, run_dir)
        try:
            outcome = run_training(spec, run_dir, reporter.step, reporter.epoch)
        except KeyboardInterrupt:
            result.interrupted = True
            reporter.message(
                f"interrupted: run {spec.run_id} keeps its finished epochs; "
                "rerun the same command to resume"
            )
            break
        except UserError:
            _put_back(run_dir, replaced)
            raise
        except Exception as exc:  # a crashing run is recorded and the sweep goes on
            outcome = RunOutcome(
                spec.run_id, "failed", 0, None, None, 0.0, f"{type(exc).__name__}: {exc}"
            )
            _mark_failed(run_dir, outcome.error or "")
        finally:
            _discard(replaced)
        result.outcomes.append(outcome)
        reporter.run_ended(outcome)
    reporter.close()
    return result


def _set_aside(run_dir: Path) -> Path | None:
    """Move a run that ``--only`` retrains out of the sweep until the new run ends (a
    bad-input error puts it back, so nothing written is lost to it)."""
    if not run_dir.exists():
        return None
    aside = run_dir.parent / REPLACED / run_dir.name
    shutil.rmtree(aside, ignore_errors=True)
    try:
        aside.parent.mkdir(exist_ok=True)
        run_dir.rename(aside)
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot replace this run ({exc.strerror})") from None
    return aside


def _put_back(run_dir: Path, aside: Path | None) -> None:
    if aside is not None and aside.exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        aside.rename(run_dir)
        _remove_if_empty(aside.parent)


def _discard(aside: Path | None) -> None:
    if aside is not None and aside.exists():
        shutil.rmtree(aside)
        _remove_if_empty(aside.parent)


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _mark_failed(run_dir: Path, error: str) -> None:
    if is_run_dir(run_dir):
        store = RunStore(run_dir)
        meta = store.read_meta()
        meta.update(status="failed", error=error.splitlines()[0] if error else error)
        store.write_meta(meta)


def dry_run_table(cfg: ProfileConfig, source: str = "config") -> pd.DataFrame:
    """The run matrix with analytic FLOPs and mean keep, without training."""
    rows = []
    data_cache: dict[str, Dataset] = {}
    for spec in plan_runs(cfg, source):
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
