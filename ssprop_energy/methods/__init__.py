"""Training methods as plug-ins: ``dense``, ``ssprop``, ``gated`` and ``gated+ssprop`` built
in; other packages add theirs through the entry point group ``ssprop_energy.methods`` (see
docs/plugins.md)."""

from .base import (
    METHODS,
    AnyMethodConfig,
    Method,
    MethodConfig,
    build_method,
    method_label,
    register_method,
)
from .dense import Dense, DenseConfig
from .gated import Gated, GatedConfig, GatedSSProp, GatedSSPropConfig
from .ssprop import SSProp, SSPropConfig

__all__ = [
    "METHODS",
    "AnyMethodConfig",
    "Dense",
    "DenseConfig",
    "Gated",
    "GatedConfig",
    "GatedSSProp",
    "GatedSSPropConfig",
    "Method",
    "MethodConfig",
    "SSProp",
    "SSPropConfig",
    "build_method",
    "method_label",
    "register_method",
]
