"""Train one run: metered phases, scheduled keep, evaluation and one stored row per epoch."""

from __future__ import annotations

import copy
import inspect
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..flops.training import count_flops_at
from ..profilers import EnergyMeter, Measurement
from ..profilers.sources import weakest
from ..sparse import DropScheduler, convert_model, sparse_layers
from .config import SSPropMethod
from .data import Dataset, load_data
from .models import MODELS, build_model, load_factory
from .runs import RunSpec
from ..store import RunStore

PHASES = ("data", "forward", "backward", "optimizer", "eval")
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
LAYER_TYPES = {"Conv1d": nn.Conv1d, "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d, "Linear": nn.Linear}


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
class RunContext:
    """A run's model, data and schedule, built from its spec."""

    model: nn.Module
    data: Dataset
    device: torch.device
    scheduler: DropScheduler | None
    optimizer: torch.optim.Optimizer
    flop_cache: dict[tuple[float, int], tuple[int, int]] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is a UserError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda requested but torch.cuda.is_available() is False")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _model_kwargs(spec: RunSpec, data: Dataset) -> dict[str, Any]:
    factory = MODELS.get(spec.model.name or "") or load_factory(str(spec.model.factory))
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    kwargs = dict(spec.model.kwargs)
    defaults = {"in_channels": data.input_shape[0], "num_classes": data.classes}
    if spec.method.dropout is not None:
        if "dropout" not in accepted:
            raise UserError(f"methods: dropout given but model {spec.model.label!r} has no dropout")
        defaults["dropout"] = spec.method.dropout
    for key, value in defaults.items():
        if key in accepted and (key not in kwargs or key == "dropout"):
            kwargs[key] = value
    return kwargs


def build_context(
    spec: RunSpec,
    data: Dataset | None = None,
    device: torch.device | None = None,
    init_from: Path | None = None,
) -> RunContext:
    """Seeded model (converted for ssProp), data, scheduler and optimizer of a run.

    ``device`` overrides the config's (counting FLOPs needs no GPU). ``init_from``: the
    weights of the run ``spec.init_run`` (see ``init_weights``)."""
    data = data or load_data(spec.data)
    seed_everything(spec.seed)
    model = build_model(spec.model.name or str(spec.model.factory), **_model_kwargs(spec, data))
    if init_from is not None:
        _load_init(model, init_from, f"methods: {spec.label}: init_from")
    elif spec.train.init_from is not None:
        _load_init(model, spec.train.init_from, "train.init_from")
    scheduler = None
    if isinstance(spec.method, SSPropMethod):
        m = spec.method
        convert_model(
            model,
            keep=1.0,
            selection=m.selection,
            layers=tuple(LAYER_TYPES[t] for t in m.layers),
            skip=m.skip_layers,
            sparse_input_grad=m.sparse_input_grad,
        )
        if not sparse_layers(model):
            raise UserError(f"methods: {spec.label}: no layer of the model was converted")
        scheduler = DropScheduler(
            m.mode,
            m.keep,
            m.min_keep,
            epochs=spec.train.epochs,
            warmup=m.warmup,
            interleave=m.interleave,
            by=m.by,
            period=m.period,
        )
    _freeze(model, spec.train.freeze, "train.freeze")
    _freeze(model, spec.method.freeze, f"methods: {spec.label}: freeze")
    device = device or resolve_device(spec.train.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    t = spec.train
    if t.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
        )
    else:
        cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
        opt = cls(params, lr=t.lr, weight_decay=t.weight_decay)
    return RunContext(model, data, device, scheduler, opt)


def init_weights(spec: RunSpec, run_dir: Path) -> Path | None:
    """The weights file a run starts from when its method has ``init_from``: the final
    weights of run ``spec.init_run`` beside ``run_dir`` (there once that run finished)."""
    return run_dir.parent / spec.init_run / WEIGHTS if spec.init_run else None


def _load_init(model: nn.Module, path: Path, field: str) -> None:
    if not path.is_file():
        raise UserError(f"{field}: {path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{field}: {path}: does not fit the model ({first})") from None


def _freeze(model: nn.Module, patterns: list[str], field: str) -> None:
    if not patterns:
        return
    matched = set()
    for name, module in model.named_modules():
        hits = [p for p in patterns if name and fnmatchcase(name, p)]
        if hits:
            matched.update(hits)
            for param in module.parameters():
                param.requires_grad_(False)
    missing = [p for p in patterns if p not in matched]
    if missing:
        raise UserError(f"{field}: {missing[0]!r} matches no module of the model")


def step_flops(ctx: RunContext, keep: float, batch: int) -> tuple[int, int]:
    """Analytic (forward, backward) FLOPs of one step of ``batch`` samples at ``keep``."""
    key = (keep, batch)
    if key not in ctx.flop_cache:
        report = count_flops_at(ctx.model, (batch, *ctx.data.input_shape), keep)
        ctx.flop_cache[key] = (report.forward, report.backward)
    return ctx.flop_cache[key]


def _keep_at(ctx: RunContext, epoch: int, step: int) -> float:
    if ctx.scheduler is None:
        return 1.0
    return ctx.scheduler.apply(ctx.model, epoch, step)


def _energy_columns(phases: dict[str, Measurement | None], sources: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    per_source = {s: 0.0 for s in sources}
    provenance: dict[str, list[str]] = {s: [] for s in sources}
    for phase in PHASES:
        m = phases.get(phase)
        row[f"time_s_{phase}"] = m.time_s if m else 0.0
        measured = []
        for s in sources:
            value = m.energy_j.get(s) if m else 0.0
            prov = m.provenance.get(s, "unavailable") if m else None
            row[f"energy_j_{phase}_{s}"] = math.nan if value is None else value
            if prov is not None:
                provenance[s].append(prov)
            if value is None:
                per_source[s] = math.nan
            else:
                per_source[s] += value
                measured.append(value)
        row[f"energy_j_{phase}"] = _total(measured)
    for s in sources:
        row[f"energy_j_{s}"] = per_source[s]
        labels = provenance[s]
        row[f"provenance_{s}"] = (
            "unavailable" if not labels or "unavailable" in labels else weakest(labels)
        )
    row["energy_j"] = _total([v for v in per_source.values() if not math.isnan(v)])
    return row


def _mean_power(sums: dict[str, Measurement | None]) -> float | None:
    """Mean power (W) of the epoch's windows so far; None while a source has no figure."""
    windows = [m for m in sums.values() if m is not None]
    joules = [m.total_energy_j for m in windows]
    seconds = sum(m.time_s for m in windows)
    if not seconds or any(j is None for j in joules):
        return None
    return sum(j for j in joules if j is not None) / seconds


def _total(values: list[float]) -> float:
    """The sum over the sources that have a figure; NaN (unknown, not 0 J) when none has."""
    return sum(values) if values else math.nan


def _evaluate(
    ctx: RunContext, spec: RunSpec, meter: EnergyMeter
) -> tuple[float, float, Measurement]:
    model, data = ctx.model, ctx.data
    model.eval()
    meter.begin("eval")
    loss_sum = torch.zeros((), device=ctx.device)
    correct = torch.zeros((), device=ctx.device, dtype=torch.long)
    with torch.no_grad(), _autocast(ctx, spec):
        for x, y in data.val_batches(spec.data.batch_size):
            x, y = x.to(ctx.device), y.to(ctx.device)
            out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    n = len(data.y_val)
    val_loss, accuracy = loss_sum.item() / n, correct.item() / n
    measurement = meter.end("eval")
    model.train()
    return val_loss, accuracy, measurement


def _autocast(ctx: RunContext, spec: RunSpec) -> Any:
    dtype = torch.float16 if ctx.device.type == "cuda" else torch.bfloat16
    return torch.autocast(ctx.device.type, dtype=dtype, enabled=spec.train.amp)


def train_epoch(
    ctx: RunContext,
    spec: RunSpec,
    meter: EnergyMeter,
    epoch: int,
    on_step: Callable[[StepInfo], None] | None = None,
) -> dict[str, Any]:
    """One epoch of training plus evaluation; returns its store row (without run_id)."""
    model, data, opt = ctx.model, ctx.data, ctx.optimizer
    scaler = torch.amp.GradScaler(
        ctx.device.type, enabled=spec.train.amp and ctx.device.type == "cuda"
    )
    steps = data.steps_per_epoch(spec.data.batch_size)
    sums: dict[str, Measurement | None] = dict.fromkeys(PHASES)
    keeps: list[float] = []
    loss_sum = 0.0
    correct = seen = 0
    flops_fwd = flops_bwd = flops_bwd_dense = 0
    start = time.perf_counter()
    model.train()
    batches = data.train_batches(spec.data.batch_size, epoch, spec.seed)
    for step in range(steps):
        keep = _keep_at(ctx, epoch, step)
        meter.begin("data")
        x, y = next(batches)
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        m_data = meter.end("data")
        meter.begin("forward")
        with _autocast(ctx, spec):
            out = model(x)
            loss = F.cross_entropy(out.float(), y)
        loss_value = loss.item()
        m_fwd = meter.end("forward")
        if not math.isfinite(loss_value):
            raise RunDiverged(f"loss became {loss_value} at epoch {epoch}, step {step}")
        meter.begin("backward")
        scaler.scale(loss).backward()
        m_bwd = meter.end("backward")
        meter.begin("optimizer")
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        m_opt = meter.end("optimizer")
        for phase, m in zip(
            ("data", "forward", "backward", "optimizer"), (m_data, m_fwd, m_bwd, m_opt), strict=True
        ):
            sums[phase] = m if sums[phase] is None else sums[phase] + m  # type: ignore[operator]
        n = len(y)
        fwd, bwd = step_flops(ctx, keep, n)
        flops_fwd += fwd
        flops_bwd += bwd
        flops_bwd_dense += step_flops(ctx, 1.0, n)[1]
        keeps.append(keep)
        loss_sum += loss_value * n
        correct += int((out.argmax(1) == y).sum())
        seen += n
        if on_step is not None:
            on_step(StepInfo(epoch, step, steps, keep, loss_value, _mean_power(sums)))
    val_loss, accuracy, sums["eval"] = _evaluate(ctx, spec, meter)
    elapsed = time.perf_counter() - start
    flops_eval = sum(
        step_flops(ctx, 1.0, len(y))[0] for _, y in data.val_batches(spec.data.batch_size)
    )
    row: dict[str, Any] = {
        "epoch": epoch,
        "keep": sum(keeps) / len(keeps),
        "train_loss": loss_sum / seen,
        "val_loss": val_loss,
        "train_accuracy": correct / seen,
        "accuracy": accuracy,
        "steps": steps,
        "time_s": elapsed,
    }
    sources = [s.name for s in meter.sources]
    row.update(_energy_columns(sums, sources))
    row["emissions_kg"] = meter.emissions_kg(row["energy_j"])
    row.update(
        flops_forward=flops_fwd,
        flops_backward=flops_bwd,
        flops_backward_dense=flops_bwd_dense,
        flops_eval=flops_eval,
        flops_total=flops_fwd + flops_bwd + flops_eval,
    )
    return row


def warm_up(ctx: RunContext, spec: RunSpec) -> None:
    """One untimed step on a throwaway copy, so the first measured epoch pays no start-up
    cost (kernel selection, allocator growth) that later runs would not pay."""
    model = copy.deepcopy(ctx.model).train()
    x, y = next(ctx.data.train_batches(spec.data.batch_size, 0, spec.seed))
    with _autocast(ctx, spec):
        loss = F.cross_entropy(model(x.to(ctx.device)).float(), y.to(ctx.device))
    loss.backward()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def save_checkpoint(path: Path, ctx: RunContext, epochs_done: int) -> None:
    """Model, optimizer and RNG state after ``epochs_done`` epochs, written atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(
        {
            "epochs_done": epochs_done,
            "model": ctx.model.state_dict(),
            "optimizer": ctx.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        tmp,
    )
    tmp.replace(path)


def load_checkpoint(path: Path, ctx: RunContext) -> int:
    state = torch.load(path, map_location=ctx.device, weights_only=False)
    ctx.model.load_state_dict(state["model"])
    ctx.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epochs_done"])


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


def run_training(
    spec: RunSpec,
    run_dir: Path,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunOutcome:
    """Train (or resume) one run, storing meta.json, epochs.csv and power.csv as it goes.

    KeyboardInterrupt marks the run ``interrupted`` (finished epochs are kept) and is
    re-raised; a NaN loss marks it ``diverged``.
    """
    store = RunStore(run_dir)
    ctx = build_context(spec, init_from=init_weights(spec, run_dir))
    epochs = store.read_epochs()
    checkpoint = run_dir / CHECKPOINT
    start_epoch = 0
    if not epochs.empty and checkpoint.is_file():
        start_epoch = load_checkpoint(checkpoint, ctx)
        epochs = epochs[epochs["epoch"] < start_epoch]
        store.write_epochs(epochs)
    elif not epochs.empty:
        epochs = epochs.iloc[0:0]
        store.write_epochs(epochs)
    e = spec.energy
    meter = EnergyMeter(
        gpus=e.gpus if ctx.device.type == "cuda" else None,
        cpu=e.cpu,
        codecarbon=e.codecarbon,
        country=e.country,
        region=e.region,
        interval_s=e.interval_s,
    )
    steps = ctx.data.steps_per_epoch(spec.data.batch_size)
    fwd, bwd_dense = step_flops(ctx, 1.0, spec.data.batch_size)
    meta: dict[str, Any] = {
        "run_id": spec.run_id,
        "sweep": spec.sweep,
        "method": spec.method.name,
        "method_label": spec.label,
        "method_params": spec.method.model_dump(mode="json"),
        "seed": spec.seed,
        "setup": spec.setup,
        "run_config": spec.resolved(),
        "status": "running",
        "target_accuracy": spec.target_accuracy,
        "target_status": None,
        "stopped_at_target": False,
        "epochs_planned": spec.train.epochs,
        "epochs_done": len(epochs),
        "mean_keep_planned": ctx.scheduler.mean_keep(steps) if ctx.scheduler else 1.0,
        "flops_per_step": {"forward": fwd, "backward_dense": bwd_dense},
        "error": None,
        "started_at": now(),
        "finished_at": None,
    }
    status, error = "running", None
    warm_up(ctx, spec)
    t0 = time.perf_counter()
    with meter:
        meter.measure_idle(e.idle_s)
        meta["energy"] = meter.energy_meta()
        meta["environment"] = {**meter.environment(), "torch": torch.__version__}
        store.write_meta(meta)
        try:
            for epoch in range(start_epoch, spec.train.epochs):
                row = {"run_id": spec.run_id, **train_epoch(ctx, spec, meter, epoch, on_step)}
                epochs = store.append_epoch(row)
                save_checkpoint(checkpoint, ctx, epoch + 1)
                reached = (
                    spec.target_accuracy is not None and row["accuracy"] >= spec.target_accuracy
                )
                meta.update(epochs_done=len(epochs))
                if spec.target_accuracy is not None:
                    meta["target_status"] = (
                        "reached"
                        if (reached or meta["target_status"] == "reached")
                        else "not_reached"
                    )
                store.write_meta(meta)
                store.write_power(meter.trace())
                if on_epoch is not None:
                    on_epoch(row)
                if reached and spec.stop_at_target:
                    meta["stopped_at_target"] = True
                    break
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
            meta.update(status=status, error=error, finished_at=now(), epochs_done=len(epochs))
            store.write_power(meter.trace())
            store.write_meta(meta)
    if status == "finished":
        if spec.save_weights:
            torch.save(ctx.model.state_dict(), run_dir / WEIGHTS)
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
