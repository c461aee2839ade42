"""ssprop-energy: measure what sparse back-propagation (ssProp) really saves.

The public API, re-exported from the package rooms; nothing is defined here.
"""

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
    "SSPropConv1d",
    "SSPropConv2d",
    "SSPropConv3d",
    "SSPropLinear",
    "__version__",
    "convert_model",
    "kept_channels",
    "set_keep",
    "sparse_layers",
]
