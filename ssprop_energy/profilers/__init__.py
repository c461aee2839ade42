"""Energy and power measurement: NVML, RAPL and CodeCarbon sources behind one interface,
and ``EnergyMeter`` with named windows (see docs/energy.md)."""

from ..provenance import Provenance
from .carbon import carbon_intensity_g_per_kwh, emissions_kg
from .discovery import Hardware, discover, find_cpu, find_gpus
from .environment import environment
from .meta import energy_meta, environment_meta
from .meter import EnergyMeter
from .sampler import SamplerError
from .sources import PowerReading, SourceInfo
from .windows import Approximation, Measurement, Readings, window_energy

__all__ = [
    "Approximation",
    "EnergyMeter",
    "Hardware",
    "Measurement",
    "PowerReading",
    "Provenance",
    "Readings",
    "SamplerError",
    "SourceInfo",
    "carbon_intensity_g_per_kwh",
    "discover",
    "emissions_kg",
    "energy_meta",
    "environment",
    "environment_meta",
    "find_cpu",
    "find_gpus",
    "window_energy",
]
