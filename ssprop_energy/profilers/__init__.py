"""Energy and power measurement: NVML, RAPL and CodeCarbon sources behind one interface,
and ``EnergyMeter`` with named windows (see the README's "Energy measurement")."""

from .carbon import carbon_intensity_g_per_kwh, emissions_kg
from .environment import environment
from .meter import EnergyMeter, Measurement
from .sampler import SamplerError
from .sources import PowerReading, Provenance, SourceInfo

__all__ = [
    "EnergyMeter",
    "Measurement",
    "PowerReading",
    "Provenance",
    "SamplerError",
    "SourceInfo",
    "carbon_intensity_g_per_kwh",
    "emissions_kg",
    "environment",
]
