"""Train one run: metered phases, the method's hooks, the task's loss and evaluation, one
stored row per epoch, and resume from the last finished epoch."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..profilers import EnergyMeter, energy_meta, environment_meta
from ..store import CHECKPOINT, WEIGHTS, RunMeta, RunStore, Status, atomic_write
from ..tasks import Batch
from .build import RunContext, build_run, init_weights, step_flops
from .checkpoint import load_checkpoint, save_checkpoint
from .epoch import EpochAccumulator
from .inference import measure_inference
from .runs import RunSpec


class RunDiverged(Exception):
    """The training loss became NaN or infinite."""


@dataclass
class StepInfo:
    """What the progress display shows after each step."""

    epoch: int
    step: int
    steps: int
    keep: float
    loss: float
    watts: float | None  # mean power of the epoch's windows so far; None: no figure


@dataclass
class RunOutcome:
    """How a run ended."""

    run_id: str
    status: str
    epochs_done: int
    accuracy: float | None
    energy_j: float | None
    time_s: float
    error: str | None = None


def _autocast(ctx: RunContext, spec: RunSpec) -> Any:
    dtype = torch.float16 if ctx.device.type == "cuda" else torch.bfloat16
    return torch.autocast(ctx.device.type, dtype=dtype, enabled=spec.train.amp)


def _on_device(batches: Iterator[Batch], device: torch.device) -> Iterator[Batch]:
    for x, y in batches:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def evaluate_metrics(ctx: RunContext, spec: RunSpec) -> dict[str, float]:
    """The task's validation metrics of the model as it is."""
    ctx.model.eval()
    with torch.no_grad(), _autocast(ctx, spec):
        metrics = ctx.task.evaluate(
            ctx.model, _on_device(ctx.data.val_batches(spec.data.batch_size), ctx.device)
        )
    ctx.model.train()
    return metrics


def train_epoch(
    ctx: RunContext,
    spec: RunSpec,
    meter: EnergyMeter,
    epoch: int,
    on_step: Callable[[StepInfo], None] | None = None,
) -> dict[str, Any]:
    """One epoch of training plus evaluation; returns its store row (without run_id)."""
    model, data, opt, method = ctx.model, ctx.data, ctx.optimizer, ctx.method
    scaler = torch.amp.GradScaler(
        ctx.device.type, enabled=spec.train.amp and ctx.device.type == "cuda"
    )
    steps = data.steps_per_epoch(spec.data.batch_size)
    acc = EpochAccumulator(epoch)
    start = time.perf_counter()
    model.train()
    method.start_epoch(model, epoch)
    batches = _on_device(data.train_batches(spec.data.batch_size, epoch, spec.seed), ctx.device)
    for step in range(steps):
        keep = method.start_step(model, epoch, step)
        meter.begin("data")
        batch = next(batches)
        acc.add_window("data", meter.end("data"))
        meter.begin("forward")
        with _autocast(ctx, spec):
            loss, metrics = ctx.task.loss(model, batch)
            extra = method.extra_loss(model)
            if extra is not None:
                loss = loss + extra
        loss_value = loss.item()
        acc.add_window("forward", meter.end("forward"))
        if not math.isfinite(loss_value):
            raise RunDiverged(f"loss became {loss_value} at epoch {epoch}, step {step}")
        meter.begin("backward")
        scaler.scale(loss).backward()
        acc.add_window("backward", meter.end("backward"))
        meter.begin("optimizer")
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        acc.add_window("optimizer", meter.end("optimizer"))
        n = len(batch[0])
        acc.add_step(
            keep, n, loss_value, metrics, step_flops(ctx, keep, n), step_flops(ctx, 1.0, n)[1]
        )
        if on_step is not None:
            on_step(StepInfo(epoch, step, steps, keep, loss_value, acc.mean_power_w()))
    meter.begin("eval")
    evaluation = evaluate_metrics(ctx, spec)
    acc.add_window("eval", meter.end("eval"))
    flops_eval = sum(
        step_flops(ctx, 1.0, len(y))[0] for _, y in data.val_batches(spec.data.batch_size)
    )
    return acc.row(
        evaluation,
        time.perf_counter() - start,
        [s.name for s in meter.sources],
        meter.emissions_kg,
        flops_eval,
    )


def warm_up(ctx: RunContext, spec: RunSpec) -> None:
    """One untimed step on a throwaway copy, so the first measured epoch pays no start-up
    cost (kernel selection, allocator growth) that later runs would not pay."""
    model = copy.deepcopy(ctx.model).train()
    x, y = next(ctx.data.train_batches(spec.data.batch_size, 0, spec.seed))
    with _autocast(ctx, spec):
        loss, _ = ctx.task.loss(model, (x.to(ctx.device), y.to(ctx.device)))
    loss.backward()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _resume(store: RunStore, checkpoint: Path, ctx: RunContext) -> tuple[int, pd.DataFrame]:
    """The first epoch to train and the stored rows before it (rows past the checkpoint, or
    rows without one, are dropped: their epochs are trained again)."""
    epochs = store.read_epochs()
    if epochs.empty:
        return 0, epochs
    start = load_checkpoint(checkpoint, ctx) if checkpoint.is_file() else 0
    epochs = epochs[epochs["epoch"] < start] if start else epochs.iloc[0:0]
    store.write_epochs(epochs)
    return start, epochs


def _meter(spec: RunSpec, ctx: RunContext) -> EnergyMeter:
    e = spec.energy
    return EnergyMeter(
        gpus=e.gpus if ctx.device.type == "cuda" else None,
        cpu=e.cpu,
        codecarbon=e.codecarbon,
        country=e.country,
        region=e.region,
        interval_s=e.interval_s,
    )


def _run_meta(spec: RunSpec, ctx: RunContext, epochs_done: int) -> RunMeta:
    steps = ctx.data.steps_per_epoch(spec.data.batch_size)
    fwd, bwd_dense = step_flops(ctx, 1.0, spec.data.batch_size)
    return RunMeta(
        run_id=spec.run_id,
        sweep=spec.sweep,
        method=spec.method.name,
        method_label=spec.label,
        method_params=spec.method.model_dump(mode="json"),
        task=ctx.task.name,
        primary_metric=ctx.task.primary_metric,
        higher_is_better=ctx.task.higher_is_better,
        seed=spec.seed,
        setup=spec.setup,
        run_config=spec.resolved(),
        epochs_planned=spec.train.epochs,
        mean_keep_planned=ctx.method.mean_keep_planned(steps),
        flops_per_step={"forward": fwd, "backward_dense": bwd_dense},
        started_at=now(),
        target_accuracy=spec.target_accuracy,
        epochs_done=epochs_done,
    )


def _end_epoch(meta: RunMeta, spec: RunSpec, row: dict[str, Any], epochs_done: int) -> bool:
    """Record a finished epoch in ``meta``; True when the run stops at its target."""
    meta.epochs_done = epochs_done
    if spec.target_accuracy is None:
        return False
    reached = row["accuracy"] >= spec.target_accuracy
    if reached or meta.target_status == "reached":
        meta.target_status = "reached"
    else:
        meta.target_status = "not_reached"
    meta.stopped_at_target = reached and spec.stop_at_target
    return meta.stopped_at_target


def _replay_epochs(meta: RunMeta, spec: RunSpec, epochs: pd.DataFrame) -> bool:
    """Record the stored epochs of a resumed run in ``meta``; True when the run had already
    stopped at its target (it was interrupted after training, while measuring inference)."""
    stop = False
    for done, (_, row) in enumerate(epochs.iterrows(), 1):
        stop = _end_epoch(meta, spec, row.to_dict(), done)
    return stop


def _measure_inference(spec: RunSpec, ctx: RunContext, meter: EnergyMeter, store: RunStore) -> None:
    """The final model's inference cost, written to inference.csv (docs/store.md)."""
    if spec.inference.enabled:
        frame = measure_inference(
            ctx.model,
            ctx.data,
            ctx.device,
            spec.inference.resolve(spec.data.batch_size),
            spec.inference.samples,
            meter=meter,
            autocast=lambda: _autocast(ctx, spec),
        )
        store.write_inference(frame)


def run_training(
    spec: RunSpec,
    run_dir: Path,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunOutcome:
    """Train (or resume) one run, storing meta.json, epochs.csv and power.csv as it goes,
    then measure the final model's inference cost (inference.csv) before the run is
    ``finished`` and its checkpoint removed.

    KeyboardInterrupt marks the run ``interrupted`` (finished epochs are kept; interrupted
    while measuring inference, it resumes with no epoch left to train) and is re-raised; a
    NaN loss marks it ``diverged``.
    """
    store = RunStore(run_dir)
    ctx = build_run(spec, init_from=init_weights(spec, run_dir))
    checkpoint = run_dir / CHECKPOINT
    start_epoch, epochs = _resume(store, checkpoint, ctx)
    meter = _meter(spec, ctx)
    meta = _run_meta(spec, ctx, len(epochs))
    if _replay_epochs(meta, spec, epochs):
        start_epoch = spec.train.epochs
    status: Status = "running"
    error = None
    warm_up(ctx, spec)
    t0 = time.perf_counter()
    with meter:
        meter.measure_idle(spec.energy.idle_s)
        meta.energy = energy_meta(meter)
        meta.environment = environment_meta(meter)
        store.write_meta(meta)
        try:
            for epoch in range(start_epoch, spec.train.epochs):
                row = {"run_id": spec.run_id, **train_epoch(ctx, spec, meter, epoch, on_step)}
                epochs = store.append_epoch(row)
                save_checkpoint(checkpoint, ctx, epoch + 1)
                stop = _end_epoch(meta, spec, row, len(epochs))
                store.write_meta(meta)
                store.write_power(meter.trace())
                if on_epoch is not None:
                    on_epoch(row)
                if stop:
                    break
            ctx.model = ctx.method.finalize(ctx.model)
            _measure_inference(spec, ctx, meter, store)
            status = "finished"
        except RunDiverged as exc:
            status, error = "diverged", str(exc)
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise
        finally:
            meta.status, meta.error, meta.finished_at = status, error, now()
            meta.epochs_done = len(epochs)
            store.write_power(meter.trace())
            store.write_meta(meta)
    if status == "finished":
        if spec.save_weights:
            state = ctx.model.state_dict()
            atomic_write(run_dir / WEIGHTS, lambda fh: torch.save(state, fh))
        checkpoint.unlink(missing_ok=True)
    last = epochs.iloc[-1] if not epochs.empty else None
    return RunOutcome(
        spec.run_id,
        status,
        len(epochs),
        None if last is None else float(last["accuracy"]),
        _run_energy(epochs),
        time.perf_counter() - t0,
        error,
    )


def _run_energy(epochs: pd.DataFrame) -> float | None:
    """The run's joules over its stored epochs; None when an epoch has no figure."""
    if epochs.empty or epochs["energy_j"].isna().any():
        return None
    return float(epochs["energy_j"].sum())
