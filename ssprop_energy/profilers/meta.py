"""The ``energy`` and ``environment`` entries of a run's meta.json (see docs/store.md)."""

from __future__ import annotations

from typing import Any

from .environment import environment
from .meter import EnergyMeter


def energy_meta(meter: EnergyMeter) -> dict[str, Any]:
    """``sources`` (provenance, reason, device per source), ``idle_power_w``, ``country``,
    ``carbon_intensity_g_per_kwh``, of a started meter."""
    return {
        "sources": {
            s.name: {"provenance": s.provenance, "reason": s.reason, "device": s.device}
            for s in meter.sources
        },
        "idle_power_w": dict(meter.idle_power_w),
        "country": meter.country,
        "carbon_intensity_g_per_kwh": meter.carbon_intensity_g_per_kwh,
    }


def environment_meta(meter: EnergyMeter) -> dict[str, Any]:
    """``python``, ``torch``, ``cuda``, ``platform``, ``cpu``, ``gpus`` (the meter's GPU
    models) and ``driver``, of a started meter."""
    hardware = meter.hardware
    return environment(gpus=hardware.gpu_models, driver=hardware.driver)
