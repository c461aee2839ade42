"""Training methods as plug-ins: ``dense`` and ``ssprop`` built in; other packages add theirs
through the entry point group ``ssprop_energy.methods`` (see docs/plugins.md)."""

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
from .ssprop import SSProp, SSPropConfig

__all__ = [
    "METHODS",
    "AnyMethodConfig",
    "Dense",
    "DenseConfig",
    "Method",
    "MethodConfig",
    "SSProp",
    "SSPropConfig",
    "build_method",
    "method_label",
    "register_method",
]
