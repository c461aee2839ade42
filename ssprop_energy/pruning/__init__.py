"""Training-time pruning with binary gates and a polarizing loss (Zhi et al., arXiv
2302.10798): gate a model, train it with :func:`polarization_loss` added, then
:func:`prune_gated` removes what the gates closed (docs/pruning.md)."""

from .gates import BlockGate, Gate, GatedInput, gates
from .gating import (
    LEVELS,
    TOLERANCE,
    GateWarning,
    add_gates,
    check_level,
    check_target,
    gate_states,
    gate_warnings,
    polarization_loss,
    warn_gates,
)
from .prune import Masks, consensus, prune_gated, prune_with

__all__ = [
    "LEVELS",
    "TOLERANCE",
    "BlockGate",
    "Gate",
    "GateWarning",
    "GatedInput",
    "Masks",
    "add_gates",
    "check_level",
    "check_target",
    "consensus",
    "gate_states",
    "gate_warnings",
    "gates",
    "polarization_loss",
    "prune_gated",
    "prune_with",
    "warn_gates",
]
