"""ssprop-energy: measure what sparse back-propagation (ssProp) really saves.

The public API, re-exported from the package rooms; nothing is defined here.
"""

from .api import ProfileResult, profile
from .flops import (
    FlopReport,
    count_flops,
    crosscheck_flops,
    fvcore_crosscheck,
    register_flop_formula,
    training_flops,
)
from .harness.calibration.estimate import SweepEstimate, estimate_sweep
from .harness.config import ProfileConfig, load_config
from .harness.run.inference import measure_inference
from .harness.sweep.runner import dry_run_table, run_sweep
from .integrations import RunRecorder
from .methods import Method, MethodConfig, register_method
from .models import build_model
from .profilers import (
    EnergyMeter,
    Measurement,
    Provenance,
    SourceInfo,
    carbon_intensity_g_per_kwh,
    emissions_kg,
)
from .reports import Report, build_report, write_report, write_sweep_report
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
from .store import RunRecord, load_sweep
from .tasks import EpochEnd, Task, TaskConfig, register_task

__version__ = "0.1.0"

__all__ = [
    "DropScheduler",
    "EnergyMeter",
    "EpochEnd",
    "FlopReport",
    "Measurement",
    "Method",
    "MethodConfig",
    "ProfileConfig",
    "ProfileResult",
    "Provenance",
    "Report",
    "RunRecord",
    "RunRecorder",
    "SSPropConv1d",
    "SSPropConv2d",
    "SSPropConv3d",
    "SSPropLinear",
    "SourceInfo",
    "SweepEstimate",
    "Task",
    "TaskConfig",
    "__version__",
    "build_model",
    "build_report",
    "carbon_intensity_g_per_kwh",
    "convert_model",
    "count_flops",
    "crosscheck_flops",
    "dry_run_table",
    "emissions_kg",
    "estimate_sweep",
    "fvcore_crosscheck",
    "kept_channels",
    "load_config",
    "load_sweep",
    "measure_inference",
    "profile",
    "register_flop_formula",
    "register_method",
    "register_task",
    "run_sweep",
    "set_keep",
    "sparse_layers",
    "training_flops",
    "write_report",
    "write_sweep_report",
]
