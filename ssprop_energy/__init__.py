"""ssprop-energy: measure what sparse back-propagation (ssProp) really saves.

The public API, re-exported from the package rooms; nothing is defined here.
"""

from .profilers import (
    EnergyMeter,
    Measurement,
    Provenance,
    SourceInfo,
    carbon_intensity_g_per_kwh,
    emissions_kg,
)
from .reports import Report, build_report, write_report
from .sparse import (
    DropScheduler,
    SSPropConv1d,
    SSPropConv2d,
    SSPropConv3d,
    SSPropLinear,
    convert_model,
    kept_channels,
    set_keep,
    sparse_layers,
)

__version__ = "0.1.0"

__all__ = [
    "DropScheduler",
    "EnergyMeter",
    "Measurement",
    "Provenance",
    "Report",
    "SSPropConv1d",
    "SSPropConv2d",
    "SSPropConv3d",
    "SSPropLinear",
    "SourceInfo",
    "__version__",
    "build_report",
    "carbon_intensity_g_per_kwh",
    "convert_model",
    "emissions_kg",
    "kept_channels",
    "set_keep",
    "sparse_layers",
    "write_report",
]
