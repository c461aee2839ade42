"""The tiny run every integration test records: the model, data, keep and batch of a
``profile`` config, trained by a loop of one's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ssprop_energy import RunRecorder
from ssprop_energy.harness.config import parse_config
from ssprop_energy.harness.run.build import RunContext, build_run
from ssprop_energy.harness.runs import RunSpec, plan_runs
from tests.support.harness_configs import tiny_config

ENERGY = {"codecarbon": False, "idle_s": 0, "interval_s": 0.05}
PROFILE_OVERRIDES: dict[str, Any] = {
    "methods": [{"name": "dense"}, {"name": "ssprop", "keep": 0.5}],
    "inference": {"enabled": False},
    "energy": ENERGY,
}
FLOP_COLUMNS = ["epoch", "steps", "keep", "flops_forward", "flops_backward",
                "flops_backward_dense", "flops_eval", "flops_total"]  # fmt: skip


def specs(tmp_path: Path) -> dict[str, RunSpec]:
    """The profile runs by method name: ``dense`` and ``ssprop``."""
    config = parse_config(tiny_config(tmp_path, **PROFILE_OVERRIDES))
    return {spec.method.name: spec for spec in plan_runs(config)}


def context(tmp_path: Path, method: str) -> tuple[RunSpec, RunContext]:
    """The run's model (prepared by its method, seeded like the profile run) and data."""
    spec = specs(tmp_path)[method]
    return spec, build_run(spec)


def val_samples(spec: RunSpec, ctx: RunContext) -> int:
    return sum(len(y) for _, y in ctx.data.val_batches(spec.data.batch_size))


def example(spec: RunSpec, ctx: RunContext) -> torch.Tensor:
    return next(ctx.data.train_batches(spec.data.batch_size, 0, spec.seed))[0]


def evaluate(spec: RunSpec, ctx: RunContext) -> dict[str, float]:
    model = ctx.model.eval()
    correct = n = 0
    loss = 0.0
    with torch.no_grad():
        for x, y in ctx.data.val_batches(spec.data.batch_size):
            out = model(x)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
    model.train()
    return {"val_loss": loss / n, "accuracy": correct / n}


def plain_loop(spec: RunSpec, ctx: RunContext, rec: RunRecorder) -> None:
    """The profile run's loop, written by hand and recorded phase by phase."""
    model, opt, size = ctx.model, ctx.optimizer, spec.data.batch_size
    for epoch in range(spec.train.epochs):
        batches = ctx.data.train_batches(size, epoch, spec.seed)
        for _ in range(ctx.data.steps_per_epoch(size)):
            with rec.phase("data"):
                x, y = next(batches)
            with rec.phase("forward"):
                out = model(x)
                loss = F.cross_entropy(out, y)
            with rec.phase("backward"):
                loss.backward()
            with rec.phase("optimizer"):
                opt.step()
                opt.zero_grad()
            accuracy = float((out.argmax(1) == y).float().mean())
            rec.end_step(loss, samples=len(x), metrics={"accuracy": accuracy})
        with rec.phase("eval"):
            metrics = evaluate(spec, ctx)
        rec.end_epoch(metrics, eval_samples=val_samples(spec, ctx))
