"""The inference cost of a model: parameters, analytic forward FLOPs per sample, and measured
latency and energy per 1,000 samples at each batch size (the rows of inference.csv,
docs/store.md).

The model runs in eval mode under ``torch.no_grad`` on validation inputs already on the
device (loading data is not part of the cost): a few untimed warm-up batches, then one
metered window of full batches, cycling the validation set, until at least ``samples``
samples have run. Latency and energy are that window's seconds and joules divided by the
batches and samples actually run; each source keeps the provenance of its window.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pandas as pd
import torch
from torch import nn

from ...data import Dataset
from ...errors import UserError
from ...flops.training import count_flops_at
from ...profilers import EnergyMeter, Measurement
from ...provenance import combine_sources
from ...store import ENERGY_PER_1000, PROVENANCE, source_column

PER_SAMPLES = 1000
"""Time and energy are given per this many samples."""
WARMUP_BATCHES = 3
"""Untimed batches before each batch size's window (kernel selection, allocator growth)."""
WINDOW = "inference"
"""The EnergyMeter window of one batch size's timed batches."""


def _inputs(data: Dataset, batch_size: int, samples: int, device: torch.device) -> list[Any]:
    """Full batches of validation inputs on ``device``, covering ``samples`` samples or the
    whole validation set, whichever is fewer (cycling it when it is smaller than a batch)."""
    available = len(data.x_val)
    if available == 0:
        raise UserError("inference: the validation set is empty (see data.val_split)")
    count = -(-min(samples, available) // batch_size)
    index = torch.arange(count * batch_size) % available
    return list(data.x_val[index].to(device).split(batch_size))


def _row(
    batch_size: int, batches: int, m: Measurement, params: int, flops_per_sample: int
) -> dict[str, Any]:
    samples = batches * batch_size
    scale = PER_SAMPLES / samples
    total = m.total_energy_j
    row: dict[str, Any] = {
        "batch_size": batch_size,
        "samples": samples,
        "batches": batches,
        "params": params,
        "flops_forward_per_sample": flops_per_sample,
        "latency_ms": m.time_s / batches * 1000.0,
        "time_s_per_1000": m.time_s * scale,
        "energy_j_per_1000": math.nan if total is None else total * scale,
        "provenance": combine_sources(m.provenance.values()),
    }
    for source, joules in m.energy_j.items():
        row[source_column(ENERGY_PER_1000, source)] = math.nan if joules is None else joules * scale
        row[source_column(PROVENANCE, source)] = m.provenance[source]
    return row


def measure_inference(
    model: nn.Module,
    data: Dataset,
    device: torch.device,
    batch_sizes: Sequence[int],
    samples: int = PER_SAMPLES,
    *,
    meter: EnergyMeter,
    autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> pd.DataFrame:
    """One row per batch size: ``batch_size``, ``samples`` and ``batches`` run,
    ``params``, ``flops_forward_per_sample`` (analytic), ``latency_ms`` (per batch),
    ``time_s_per_1000``, ``energy_j_per_1000`` with ``provenance``, and per source
    ``energy_j_per_1000_<source>`` with ``provenance_<source>``.

    ``meter`` must be started; each batch size is one window named ``inference``.
    ``autocast``: the precision context of the forward passes (none: full precision). The
    model's train/eval mode is restored afterwards.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    model = model.to(device)
    params = sum(p.numel() for p in model.parameters())
    flops_per_sample = count_flops_at(model, (1, *data.input_shape), 1.0).forward
    was_training = model.training
    model.eval()
    rows = []
    try:
        with torch.no_grad(), autocast():
            for batch_size in batch_sizes:
                inputs = _inputs(data, batch_size, samples, device)
                for x in inputs[:WARMUP_BATCHES]:
                    model(x)
                batches = -(-samples // batch_size)
                meter.begin(WINDOW)
                for i in range(batches):
                    model(inputs[i % len(inputs)])
                m = meter.end(WINDOW)
                rows.append(_row(batch_size, batches, m, params, flops_per_sample))
    finally:
        model.train(was_training)
    return pd.DataFrame(rows)
