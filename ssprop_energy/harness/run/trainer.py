"""Train one run: metered phases, the method's hooks, the task's loss and evaluation, one
stored row per epoch, and resume from the last finished epoch."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from ...errors import UserError
from ...profilers import EnergyMeter
from ...store import (
    CHECKPOINT,
    WEIGHTS,
    EstimateMeta,
    PhaseCalibrationMeta,
    RunStore,
    atomic_write,
    atomic_write_csv,
    epoch_number,
    parse_entry,
)
from ...tasks import Batch, EpochEnd
from ..ranks.group import RankGroup
from ..ranks.run import RankSink
from ..runs import RunSpec
from .build import RunContext, build_run, init_weights, step_flops
from .checkpoint import load_checkpoint, resume_point, save_checkpoint
from .contention import CpuContention
from .controlled import Comparison, start_comparison
from .epoch import EpochAccumulator
from .inference import measure_inference
from .metering import build_meter
from .outcome import RunOutcome, StepInfo
from .run_meta import add_built, end_epoch, replay_epochs, spec_meta
from .session import LocalSink, RunDiverged, RunSession

__all__ = [
    "RunDiverged",
    "RunOutcome",
    "StepInfo",
    "eval_flops",
    "evaluate_metrics",
    "grad_scaler",
    "run_training",
    "train_epoch",
    "train_step",
]


def _autocast(ctx: RunContext, spec: RunSpec) -> Any:
    dtype = torch.float16 if ctx.device.type == "cuda" else torch.bfloat16
    return torch.autocast(ctx.device.type, dtype=dtype, enabled=spec.train.amp)


def _on_device(batches: Iterator[Batch], device: torch.device) -> Iterator[Batch]:
    for x, y in batches:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def evaluate_metrics(
    ctx: RunContext, spec: RunSpec, batches: int | None = None
) -> dict[str, float]:
    """The task's validation metrics of the model as it is (over the first ``batches``
    validation batches; all of them by default)."""
    ctx.model.eval()
    val = islice(ctx.data.val_batches(spec.data.batch_size), batches)
    with torch.no_grad(), _autocast(ctx, spec):
        metrics = ctx.task.evaluate(ctx.model, _on_device(val, ctx.device))
    ctx.model.train()
    return metrics


def eval_flops(ctx: RunContext, spec: RunSpec) -> int:
    """Analytic forward FLOPs of one full validation pass."""
    return sum(
        step_flops(ctx, 1.0, len(y))[0] for _, y in ctx.data.val_batches(spec.data.batch_size)
    )


def grad_scaler(ctx: RunContext, spec: RunSpec) -> torch.amp.GradScaler:
    """The loss scaler of one epoch (active with ``amp`` on CUDA only)."""
    return torch.amp.GradScaler(
        ctx.device.type, enabled=spec.train.amp and ctx.device.type == "cuda"
    )


def train_step(
    ctx: RunContext,
    spec: RunSpec,
    meter: EnergyMeter,
    acc: EpochAccumulator,
    scaler: torch.amp.GradScaler,
    batches: Iterator[Batch],
    position: tuple[int, int],
    until: str = "optimizer",
) -> tuple[float, float]:
    """One training step at ``position`` (epoch, step): the method's keep, the metered data,
    forward, backward and optimizer windows, and the step's FLOPs, added to ``acc``;
    returns (keep, loss). ``until``: the last phase to run (``forward``, ``backward`` or
    ``optimizer``); a step cut short after ``backward`` drops its gradients, and adds no
    step to ``acc`` (the phase calibration's blocks, :mod:`.phases`)."""
    epoch, step = position
    model, method, opt = ctx.model, ctx.method, ctx.optimizer
    keep = method.start_step(model, epoch, step)
    meter.begin("data")
    batch = next(batches)
    acc.add_window("data", meter.end("data"))
    meter.begin("forward")
    with _autocast(ctx, spec):
        loss, metrics = ctx.task.loss(ctx.forward_model, batch)
        extra = method.extra_loss(model)
        if extra is not None:
            loss = loss + extra
    loss_value = loss.item()
    acc.add_window("forward", meter.end("forward"))
    if not math.isfinite(loss_value):
        raise RunDiverged(
            f"loss became {loss_value} at epoch {epoch_number(epoch)}, step {step + 1}"
        )
    if until == "forward":
        return keep, loss_value
    meter.begin("backward")
    scaler.scale(loss).backward()
    acc.add_window("backward", meter.end("backward"))
    if until == "backward":
        opt.zero_grad(set_to_none=True)
        return keep, loss_value
    meter.begin("optimizer")
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    acc.add_window("optimizer", meter.end("optimizer"))
    n = len(batch[0])
    acc.add_step(keep, n, loss_value, metrics, step_flops(ctx, keep, n), step_flops(ctx, 1.0, n)[1])
    return keep, loss_value


def train_epoch(
    ctx: RunContext,
    spec: RunSpec,
    meter: EnergyMeter,
    epoch: int,
    on_step: Callable[[StepInfo], None] | None = None,
    comparison: Comparison | None = None,
) -> dict[str, Any]:
    """One epoch of training plus evaluation; returns its store row (without run_id).
    ``comparison``: the run's controlled comparison, whose blocks train some of the steps
    (:mod:`.controlled`); the shadow's seconds are not the epoch's."""
    changed = ctx.method.start_epoch(ctx.model, epoch)
    if changed is not None:
        ctx.replace_model(changed)
    data = ctx.data
    scaler = grad_scaler(ctx, spec)
    steps = data.steps_per_epoch(spec.data.batch_size, ctx.part)
    acc = EpochAccumulator(epoch)
    start = time.perf_counter()
    ctx.model.train()
    shard = data.train_batches(spec.data.batch_size, epoch, spec.seed, ctx.part)
    batches = _on_device(shard, ctx.device)
    step = 0
    while step < steps:
        if comparison is not None and comparison.due(step, steps):
            done = comparison.block(ctx, spec, meter, acc, scaler, batches, (epoch, step))
        else:
            done = [train_step(ctx, spec, meter, acc, scaler, batches, (epoch, step))]
        for keep, loss_value in done:
            if on_step is not None:
                on_step(StepInfo(epoch, step, steps, keep, loss_value, acc.mean_power_w()))
            step += 1
    meter.begin("eval")
    if ctx.share_buffers is not None:
        ctx.share_buffers(ctx.model)
    evaluation = evaluate_metrics(ctx, spec)
    acc.add_window("eval", meter.end("eval"))
    flops_eval = eval_flops(ctx, spec)
    extra = 0.0 if comparison is None else comparison.epoch_extra_s
    return acc.row(
        evaluation,
        time.perf_counter() - start - extra,
        [s.name for s in meter.sources],
        meter.emissions_kg,
        flops_eval,
    )


def _rng_devices(ctx: RunContext) -> list[int]:
    """The CUDA devices whose RNG state ``torch.random.fork_rng`` keeps for the run."""
    return [torch.cuda.current_device()] if ctx.device.type == "cuda" else []


def task_end_epoch(
    ctx: RunContext, spec: RunSpec, meter: EnergyMeter, epoch: int, run_dir: Path
) -> dict[str, Any]:
    """The task's columns after ``epoch`` (``Task.end_epoch``): the model in eval mode under
    ``torch.no_grad``, the global RNG state restored afterwards (resume stays exact)."""
    end = EpochEnd(epoch, spec.train.epochs, run_dir, meter, ctx.device, ctx.data)
    ctx.model.eval()
    try:
        with torch.random.fork_rng(devices=_rng_devices(ctx)), torch.no_grad():
            return ctx.task.end_epoch(ctx.model, end)
    finally:
        ctx.model.train()


def warm_up(ctx: RunContext, spec: RunSpec) -> None:
    """One untimed step on a throwaway copy, so the first measured epoch pays no start-up
    cost (kernel selection, allocator growth) that later runs would not pay. The global RNG
    state is restored afterwards (a resumed run continues from its checkpoint's)."""
    model = copy.deepcopy(ctx.model).train()
    x, y = next(ctx.data.train_batches(spec.data.batch_size, 0, spec.seed))
    with torch.random.fork_rng(devices=_rng_devices(ctx)), _autocast(ctx, spec):
        loss, _ = ctx.task.loss(model, (x.to(ctx.device), y.to(ctx.device)))
        loss.backward()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()


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
    estimate: EstimateMeta | None = None,
    phase_calibration: dict[str, Any] | None = None,
    group: RankGroup | None = None,
) -> RunOutcome:
    """Train (or resume) one run, storing meta.json, epochs.csv and the power chunks as it goes,
    then measure the final model's inference cost (inference.csv) before the run is
    ``finished`` and its checkpoint removed. ``estimate``: the run's predicted cost from the
    sweep's estimate.csv, kept in meta.json; ``phase_calibration``: the run's entry of the
    sweep's phase calibration (:mod:`.phases`), kept there too.

    How the run ends is the :class:`~.session.RunSession`'s: meta.json says how, its
    ``epochs_done`` counts the rows of epochs.csv, and no temporary file stays behind: a NaN
    loss marks the run ``diverged``; KeyboardInterrupt (and the termination signals that
    raise it) ``interrupted``, and is re-raised (interrupted while measuring inference, the
    run resumes with no epoch left to train); any other exception ``failed``, with the
    error. A UserError is re-raised after that: bad input met while the run is built leaves
    the stored run as it was, a later one (a write that failed) marks it ``failed``. A
    StoreConflict (another process writes the run) is re-raised and leaves the run to that
    process. A metering fault is a note in meta.json, and the epochs it touched have no
    figure from the failed source.

    ``group``: this process is one rank of a distributed run (``harness.ranks``): every
    rank trains its shard, rank 0 alone writes the store (every rank's folder and the
    totals, through the rank's epoch sink), and any exception is re-raised once recorded, so
    the launch stops whole.
    """
    sink = LocalSink() if group is None else RankSink(group, run_dir, spec.data.batch_size)
    meta = spec_meta(spec)
    meta.estimate = estimate
    if phase_calibration is not None:
        meta.phase_calibration = parse_entry(PhaseCalibrationMeta, phase_calibration)
    checkpoint = run_dir / CHECKPOINT
    session = RunSession(run_dir, meta, sink, contain=group is None, checkpoint=checkpoint)
    meta.epochs_done = len(session.store.read_epochs())
    t0 = time.perf_counter()
    with session:
        try:
            ctx = build_run(spec, init_from=init_weights(spec, run_dir), device=sink.device())
            sink.distribute(ctx)
            add_built(meta, spec, ctx)
        except UserError:
            session.recorded = False
            raise
        t0 = _train(session, spec, ctx, (on_step, on_epoch))
    return RunOutcome.of(
        spec.run_id, session, session.store.read_epochs(), time.perf_counter() - t0
    )


def _train(
    session: RunSession,
    spec: RunSpec,
    ctx: RunContext,
    callbacks: tuple[Callable[[StepInfo], None] | None, Callable[[dict[str, Any]], None] | None],
) -> float:
    """Resume, meter and train the built run, finalize it and measure its inference cost;
    returns the time training started (``time.perf_counter``)."""
    on_step, on_epoch = callbacks
    meta, store, sink, checkpoint = session.meta, session.store, session.sink, session.checkpoint
    assert checkpoint is not None  # the trainer's session keeps one

    def first() -> tuple[int, int]:
        start, epochs = resume_point(store, checkpoint, ctx)
        meta.epochs_done = len(epochs)
        stopped = replay_epochs(meta, spec, epochs)
        return (spec.train.epochs if stopped else start), len(epochs)

    start_epoch, kept = sink.resume(first, lambda: load_checkpoint(checkpoint, ctx))
    energy = sink.meter_options(spec.energy)
    meter = build_meter(energy, ctx.device)
    comparison = None  # a controlled comparison runs in a run of one process only
    if isinstance(sink, LocalSink):
        comparison = start_comparison(session.store, spec, ctx, kept, (train_step, warm_up))
        meta.comparison = None if comparison is None else comparison.meta
    warm_up(ctx, spec)
    t0 = time.perf_counter()
    session.start_meter(meter, energy, kept)
    session.save_meta()

    def stored(row: dict[str, Any], epochs_done: int) -> bool:
        save_checkpoint(checkpoint, ctx, row["epoch"] + 1)
        return end_epoch(meta, spec, row, epochs_done)

    def step(info: StepInfo) -> None:
        session.after_step(info.epoch)
        if on_step is not None:
            on_step(info)

    contention = CpuContention()
    for epoch in range(start_epoch, spec.train.epochs):
        contention.start()
        extra = {} if comparison is None else {"comparison": comparison}  # keeps wrappers working
        row = {"run_id": spec.run_id, **train_epoch(ctx, spec, meter, epoch, step, **extra)}
        if comparison is not None:
            comparison.end_epoch(session.store)
        row.update(contention.lap())
        row.update(meter.health())  # GPU hygiene: each GPU's state at the epoch's end
        row.update(task_end_epoch(ctx, spec, meter, epoch, session.run_dir))
        if session.end_epoch(row, epoch, stored, on_epoch):
            break
    ctx.model = ctx.method.finalize(ctx.model)
    session.meta.method_notes = ctx.method.notes()
    session.on_writer(lambda: _write_tables(session, spec, ctx, meter))
    session.stop_meter()
    if spec.save_weights:
        state = ctx.model.state_dict()
        session.on_writer(
            lambda: atomic_write(session.run_dir / WEIGHTS, lambda fh: torch.save(state, fh))
        )
    return t0


def _write_tables(session: RunSession, spec: RunSpec, ctx: RunContext, meter: EnergyMeter) -> None:
    """The method's tables and the final model's inference cost (inference.csv)."""
    for name, table in ctx.method.tables().items():
        atomic_write_csv(session.run_dir / name, table)
    _measure_inference(spec, ctx, meter, session.store)
