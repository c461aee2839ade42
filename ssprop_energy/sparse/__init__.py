"""The ssProp method: channel-sparse backward layers, model conversion and drop schedules."""

from .convert import convert_model, set_keep, sparse_layers
from .functional import SparseConvFunction, SparseLinearFunction, sparse_conv, sparse_linear
from .layers import SSPropConv1d, SSPropConv2d, SSPropConv3d, SSPropLinear, SSPropMixin
from .schedule import DropScheduler
from .selection import (
    channel_scores,
    kept_channels,
    kept_count,
    select_channels,
    synced_scores,
)

__all__ = [
    "DropScheduler",
    "SSPropConv1d",
    "SSPropConv2d",
    "SSPropConv3d",
    "SSPropLinear",
    "SSPropMixin",
    "SparseConvFunction",
    "SparseLinearFunction",
    "channel_scores",
    "convert_model",
    "kept_channels",
    "kept_count",
    "select_channels",
    "set_keep",
    "sparse_conv",
    "sparse_layers",
    "sparse_linear",
    "synced_scores",
]
