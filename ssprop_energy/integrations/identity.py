"""Who a recorded run is: its meta.json before training (method, keep, FLOPs per step,
``run_config``, run id), and the entries it takes from a stored run to be compared with it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..harness.config import EnergyConfig
from ..harness.run.metering import now
from ..sparse import DropScheduler, sparse_layers
from ..store import RunMeta, read_meta


@dataclass(frozen=True)
class RecordedRun:
    """What the user names: the sweep, the run's label and seed, the method's name (None:
    from the model), the sweep point, and the integration that records it."""

    sweep: str
    method_label: str
    seed: int
    method: str | None
    setup: dict[str, Any]
    recorded_by: str


def keep_in_force(model: nn.Module) -> tuple[float, bool]:
    """The keep of the model's ssProp layers (1.0 without any), and whether they agree (else
    their mean)."""
    keeps = [float(m.keep) for _, m in sparse_layers(model)]  # type: ignore[arg-type]
    if not keeps:
        return 1.0, True
    return sum(keeps) / len(keeps), len(set(keeps)) == 1


def _planned_keep(scheduler: DropScheduler | None, keep: float) -> float | None:
    """The scheduler's mean keep over the run where it needs no step count; without a
    scheduler, the keep in force at the start."""
    if scheduler is None:
        return keep
    if scheduler.by == "epoch" or scheduler.mode == "constant":
        return scheduler.mean_keep()
    return None


def recorded_meta(
    run: RecordedRun,
    model: nn.Module,
    example: list[torch.Tensor],
    scheduler: DropScheduler | None,
    energy: EnergyConfig,
    epochs: int | None,
    flops_per_step: tuple[int, int],
    metric: tuple[str, bool],
    compare_with: Path | None,
) -> RunMeta:
    """The run's meta.json as it starts (``running``). Its id hashes its ``run_config``,
    setup and start time: every recording is a run of its own."""
    keep, _ = keep_in_force(model)
    sparse = bool(sparse_layers(model))
    method = run.method or ("ssprop" if sparse or scheduler is not None else "dense")
    params = asdict(scheduler) if scheduler is not None else {"keep": keep} if sparse else {}
    planned = epochs or (scheduler.epochs if scheduler is not None else None)
    run_config: dict[str, Any] = {
        "recorded_by": run.recorded_by,
        "model": {
            "name": type(model).__name__,
            "params": sum(p.numel() for p in model.parameters()),
        },
        "data": {"batch_size": len(example[0]), "input_shape": list(example[0].shape[1:])},
        "method": {"name": method, "label": run.method_label, **params},
        "seed": run.seed,
        "energy": energy.model_dump(mode="json"),
        "train": {"epochs": planned},
    }
    forward, backward_dense = flops_per_step
    setup = dict(run.setup)
    if compare_with is not None:
        setup = _take_identity(compare_with, run_config, flops_per_step, len(example[0]))
    started = datetime.now(UTC).isoformat()
    text = json.dumps([run_config, setup, started], sort_keys=True, default=str)
    return RunMeta(
        run_id=hashlib.sha256(text.encode()).hexdigest()[:12],
        sweep=run.sweep,
        method=method,
        method_label=run.method_label,
        method_params=params,
        task="recorded",
        primary_metric=metric[0],
        higher_is_better=metric[1],
        seed=run.seed,
        setup=setup,
        run_config=run_config,
        epochs_planned=planned or 1,
        mean_keep_planned=_planned_keep(scheduler, keep),
        flops_per_step={"forward": forward, "backward_dense": backward_dense},
        started_at=now(),
    )


def _take_identity(
    run_dir: Path, run_config: dict[str, Any], flops: tuple[int, int], batch: int
) -> dict[str, Any]:
    """The setup of the stored run ``run_dir``; its model and data entries go into
    ``run_config``. A run of another model or batch (other FLOPs per step) is refused."""
    stored = read_meta(run_dir)
    theirs = stored.flops_per_step
    ours = {"forward": flops[0], "backward_dense": flops[1]}
    if theirs != ours:
        raise UserError(
            f"compare_with: {run_dir}: its FLOPs per step {theirs} differ from this "
            f"model's {ours} at batch {batch}: not the same model and batch"
        )
    config = stored.run_config
    run_config["model"], run_config["data"] = config.get("model"), config.get("data")
    return dict(stored.setup)
