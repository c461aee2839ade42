"""A controlled comparison inside a run's epochs (docs/controlled.md): paired blocks of the
run's own training steps and of a *shadow* of the sweep's baseline on exactly the same
batches, in alternating order, until the ratio's interval is narrow enough or the budget
is the limit.

The shadow is the baseline's configuration built by :func:`~.build.build_run` on the
baseline's RunSpec (same model spec, seed, setup and batch; its own optimizer), never
stored. Its steps run under a kept random state (Python, NumPy and torch, restored after)
and take their batches from the block, never from the data iterator, so the run trains on
the same batches with the same random numbers as it would without the comparison: its
stored FLOPs, losses and accuracies are the same.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...methods import DenseConfig, method_label
from ...profilers import EnergyMeter
from ...provenance import UNAVAILABLE, combine_sources
from ...stats import ratio_interval
from ...store import ARMS, BLOCKS_COLUMNS, PHASES, ComparisonMeta, RunStore, source_column
from ...tasks import Batch
from ..runs import RunSpec
from .build import RunContext, build_run
from .epoch import EpochAccumulator

DESIGN = "shadow blocks, alternating order"
"""meta.json's ``comparison.design``: the design this module implements."""

StepFn = Callable[
    [
        RunContext,
        RunSpec,
        EnergyMeter,
        EpochAccumulator,
        torch.amp.GradScaler,
        Iterator[Batch],
        tuple[int, int],
    ],
    tuple[float, float],
]
"""One training step (``trainer.train_step``): returns (keep, loss)."""


@contextlib.contextmanager
def kept_rng(device: torch.device) -> Iterator[None]:
    """Python's, NumPy's and torch's random state (CPU, and the current CUDA device) as they
    were before the block, whatever it draws."""
    python, numpy = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)


def baseline_spec(spec: RunSpec) -> RunSpec:
    """The RunSpec of the run's baseline: the sweep's baseline method (plain ``dense``
    without one) with everything else the run's, starting from fresh weights."""
    return replace(spec, method=spec.baseline or DenseConfig(), init_run=None)


def is_compared(spec: RunSpec) -> bool:
    """True when the run gets a controlled comparison: it is on, and the run is not itself
    the baseline."""
    if not spec.comparison.enabled:
        return False
    return method_label(baseline_spec(spec).method) != spec.label


class Comparison:
    """The state of one run's controlled comparison; the trainer asks :meth:`due` before
    each step and lets :meth:`block` train the next ``block_steps`` steps when it is."""

    def __init__(
        self, spec: RunSpec, ctx: RunContext, step: StepFn, kept: pd.DataFrame, prior_s: float
    ) -> None:
        self.cfg = spec.comparison
        self.spec = baseline_spec(spec)
        with kept_rng(ctx.device):
            self.shadow = build_run(self.spec, data=ctx.data, device=ctx.device)
        self.step = step
        amp = self.spec.train.amp and ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=amp)
        self.meta = ComparisonMeta(
            baseline_run=self.spec.run_id,
            baseline_method=self.spec.label,
            design=DESIGN,
            block_steps=self.cfg.block_steps,
            precision=self.cfg.precision,
            budget=self.cfg.budget,
        )
        self.rows: list[dict[str, Any]] = []
        self.epoch_extra_s = 0.0
        self._t0 = time.perf_counter()
        self._prior_s = prior_s
        self._new_extra_s = 0.0
        self._steps = 0
        self._last_cost_s: float | None = None
        for run, base in _pairs(kept):
            self._add_pair(run, base)
            self.meta.extra_time_s += base["time_s"]

    @property
    def stopped(self) -> bool:
        return self.meta.stop != "budget"

    def train_time_s(self) -> float:
        """The run's own seconds so far (its stored epochs' and this process's, less the
        shadow's)."""
        return self._prior_s + time.perf_counter() - self._t0 - self._new_extra_s

    def due(self, step: int, steps: int) -> bool:
        """True when a block starts at ``step`` of an epoch of ``steps``: not stopped, the
        block fits in the epoch, and the budget covers the shadow's next block."""
        blocks = self.cfg.block_steps
        if self.stopped or step + blocks > steps or self._steps < blocks:
            self._steps += 1
            return False
        train_s = self.train_time_s()
        cost = self._last_cost_s or blocks * train_s / self._steps
        if self.meta.extra_time_s + cost > self.cfg.budget * train_s:
            self._steps += 1
            return False
        return True

    def block(
        self,
        ctx: RunContext,
        spec: RunSpec,
        meter: EnergyMeter,
        acc: EpochAccumulator,
        scaler: torch.amp.GradScaler,
        batches: Iterator[Batch],
        position: tuple[int, int],
    ) -> list[tuple[float, float]]:
        """The next ``block_steps`` batches, trained by the run and (first or second, in
        turn) by the shadow; returns the run's (keep, loss) per step."""
        epoch, step = position
        meter.begin("data")
        chunk = list(islice(batches, self.cfg.block_steps))
        acc.add_window("data", meter.end("data"))
        order = ARMS if self.meta.pairs % 2 == 0 else ARMS[::-1]
        rows: dict[str, dict[str, Any]] = {}
        out: list[tuple[float, float]] = []
        failed = ""
        for turn, arm in enumerate(order):
            meter.begin(f"controlled_{arm}")
            if arm == ARMS[0]:
                it = iter(chunk)
                out = [
                    self.step(ctx, spec, meter, acc, scaler, it, (epoch, step + i))
                    for i in range(len(chunk))
                ]
            else:
                failed = self._shadow_steps(meter, chunk, position)
            m = meter.end(f"controlled_{arm}")
            rows[arm] = _row(m, epoch, self.meta.pairs, arm, turn, chunk)
        self._steps += len(chunk)
        cost = rows[ARMS[1]]["time_s"]
        self.epoch_extra_s += cost
        self._new_extra_s += cost
        self.meta.extra_time_s += cost
        self._last_cost_s = cost
        if failed:
            self.meta.stop = f"stopped: the shadow failed ({failed})"
        else:
            self._add_pair(rows[ARMS[0]], rows[ARMS[1]])
        return out

    def _shadow_steps(
        self, meter: EnergyMeter, chunk: list[Batch], position: tuple[int, int]
    ) -> str:
        """The shadow's steps on ``chunk`` under a kept random state; an error's text, or
        ``""``. Its windows go to a throwaway accumulator: never to the run's epoch."""
        epoch, step = position
        acc = EpochAccumulator(epoch)
        it = iter(chunk)
        try:
            with kept_rng(self.shadow.device):
                for i in range(len(chunk)):
                    position = (epoch, step + i)
                    self.step(self.shadow, self.spec, meter, acc, self.scaler, it, position)
        except Exception as exc:  # the shadow's failure stops the comparison, not the run
            for phase in PHASES:  # a window the failed step left open
                with contextlib.suppress(ValueError):
                    meter.end(phase)
            return f"{type(exc).__name__}: {exc}"
        return ""

    def _add_pair(self, run: dict[str, Any], base: dict[str, Any]) -> None:
        self.rows += [run, base]
        self.meta.pairs += 1
        self.meta.time_log_ratios.append(math.log(run["time_s"] / base["time_s"]))
        energies = run["energy_j"], base["energy_j"]
        known = all(isinstance(e, float) and e > 0 and not math.isnan(e) for e in energies)
        self.meta.energy_log_ratios.append(math.log(energies[0] / energies[1]) if known else None)
        if self.meta.pairs >= self.cfg.min_pairs and self._precise():
            self.meta.stop = "precision"

    def _precise(self) -> bool:
        """True when the time ratio's interval (and the energy ratio's, where every pair has
        one) is narrower than the target: its half-width relative to the ratio."""
        logs = [self.meta.time_log_ratios]
        energy = self.meta.energy_log_ratios
        if all(e is not None for e in energy):
            logs.append([e for e in energy if e is not None])
        widths = [ratio_interval(math.exp(v) for v in x).relative_half_width for x in logs]
        return all(w <= self.cfg.precision for w in widths)

    def end_epoch(self, store: RunStore) -> float:
        """Write blocks.csv and the state; returns the shadow's seconds in this epoch (not
        part of the epoch's time)."""
        extra, self.epoch_extra_s = self.epoch_extra_s, 0.0
        self.meta.train_time_s = self.train_time_s()
        store.write_blocks(blocks_frame(self.rows))
        return extra


def start_comparison(
    store: RunStore,
    spec: RunSpec,
    ctx: RunContext,
    kept: int,
    steps: tuple[StepFn, Callable[[RunContext, RunSpec], None]],
) -> Comparison | None:
    """The run's controlled comparison, continuing from the blocks of its ``kept`` stored
    epochs, its shadow warmed up by one untimed step; None for a run without one.
    ``steps``: the trainer's ``train_step`` and ``warm_up``."""
    if not is_compared(spec):
        return None
    blocks = store.read_blocks()
    if not blocks.empty:
        blocks = blocks[blocks["epoch"] < kept]
    epochs = store.read_epochs()
    prior = float(epochs["time_s"].iloc[:kept].sum()) if not epochs.empty else 0.0
    step, warm_up = steps
    comparison = Comparison(spec, ctx, step, blocks, prior)
    try:
        warm_up(comparison.shadow, comparison.spec)
    except Exception as exc:  # the shadow's failure stops the comparison, not the run
        comparison.meta.stop = f"stopped: the shadow failed ({type(exc).__name__}: {exc})"
    return comparison


def _row(m: Any, epoch: int, block: int, arm: str, turn: int, chunk: list[Batch]) -> dict[str, Any]:
    """One arm's row of blocks.csv from its window (a ``Measurement``)."""
    known = [e for e in m.energy_j.values() if e is not None]
    row: dict[str, Any] = {
        "epoch": epoch,
        "block": block,
        "arm": arm,
        "order": turn,
        "steps": len(chunk),
        "samples": sum(len(b[0]) for b in chunk),
        "time_s": m.time_s,
        "energy_j": float(sum(known)) if known else math.nan,
        "provenance": combine_sources(m.provenance.values()),
    }
    for source, joules in m.energy_j.items():
        row[source_column("energy_j", source)] = math.nan if joules is None else joules
        row[source_column("provenance", source)] = m.provenance.get(source, UNAVAILABLE)
    return row


def blocks_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """blocks.csv's rows: its columns first, then the per-source ones."""
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in BLOCKS_COLUMNS]
    return frame.reindex(columns=[*BLOCKS_COLUMNS, *extra])


def _pairs(kept: pd.DataFrame) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The stored block pairs (both arms present), in order."""
    if kept.empty:
        return
    for _, group in kept.groupby("block", sort=True):
        arms = {str(r["arm"]): dict(r) for r in group.to_dict("records")}
        if set(arms) == set(ARMS):
            yield arms[ARMS[0]], arms[ARMS[1]]
