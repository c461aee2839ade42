"""A run's meter, for the trainer, the run recorder and the calibrations alike: built from the
``energy`` section, its idle power and the energy and environment entries of meta.json; and
the clock and the one-line error meta.json keeps."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import torch

from ...errors import UserError
from ...profilers import EnergyMeter, energy_meta, environment_meta
from ...store import EnergyMeta, EnvironmentMeta, RunMeta, parse_entry
from ..config import EnergyConfig


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


def cool_down(seconds: float) -> None:
    """Idle ``seconds`` (``energy.cooldown_s``): a GPU warmed by the previous run or
    calibration block cools before the next is measured (docs/energy.md#gpu-hygiene)."""
    if seconds > 0:
        time.sleep(seconds)


def start_metering(meter: EnergyMeter, energy: EnergyConfig, meta: RunMeta) -> None:
    """Idle ``energy.cooldown_s`` seconds (:func:`cool_down`), measure idle power on the
    started ``meter``, then fill meta.json's ``energy`` and ``environment`` entries."""
    cool_down(energy.cooldown_s)
    meter.measure_idle(energy.idle_s)
    meta.energy = parse_entry(EnergyMeta, energy_meta(meter))
    meta.environment = parse_entry(EnvironmentMeta, environment_meta(meter))
