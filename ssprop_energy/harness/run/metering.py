"""What every run writes around its epoch rows, for the trainer and the run recorder alike:
its meter, the energy and environment entries of meta.json, the end of its power trace, and
how the run ended."""

from __future__ import annotations

from datetime import UTC, datetime

import torch

from ...errors import UserError
from ...profilers import EnergyMeter, energy_meta, environment_meta
from ...store import EnergyMeta, EnvironmentMeta, RunMeta, RunStore, Status, parse_entry
from ..config import EnergyConfig
from .trace import TraceRecorder


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def one_line(exc: BaseException) -> str:
    """An exception as meta.json's one-line ``error``: a UserError's message, else
    ``Type: message``."""
    text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


def build_meter(energy: EnergyConfig, device: torch.device) -> EnergyMeter:
    """The run's EnergyMeter, as its ``energy`` section says (GPUs only on a CUDA device)."""
    return EnergyMeter(
        gpus=energy.gpus if device.type == "cuda" else None,
        cpu=energy.cpu,
        codecarbon=energy.codecarbon,
        country=energy.country,
        region=energy.region,
        interval_s=energy.interval_s,
    )


def start_metering(meter: EnergyMeter, energy: EnergyConfig, meta: RunMeta) -> None:
    """Measure idle power on the started ``meter``, then fill meta.json's ``energy`` and
    ``environment`` entries."""
    meter.measure_idle(energy.idle_s)
    meta.energy = parse_entry(EnergyMeta, energy_meta(meter))
    meta.environment = parse_entry(EnvironmentMeta, environment_meta(meter))


def record_end(
    store: RunStore,
    meta: RunMeta,
    status: Status,
    error: str | None,
    epochs_done: int,
    trace: TraceRecorder | None,
) -> None:
    """meta.json says how the run ended (written first: it matters most), then the power
    readings after the last stored epoch."""
    meta.status, meta.error, meta.finished_at = status, error, now()
    meta.epochs_done = epochs_done
    store.write_meta(meta)
    if trace is not None:
        trace.end_run()
