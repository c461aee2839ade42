"""Analytic forward/backward FLOP counters, training-run totals and cross-checks.

Formulas live in one registry (:mod:`.registry`): the built-in ones (:mod:`.builtin`) and
any a user adds with ``register_flop_formula``.
"""

from .counter import CONVENTION, FlopReport, count_flops, is_conv
from .crosscheck import crosscheck_flops, fvcore_crosscheck
from .registry import Call, FlopCost, register_flop_formula, unregister_flop_formula
from .training import count_flops_at, training_flops

__all__ = [
    "CONVENTION",
    "Call",
    "FlopCost",
    "FlopReport",
    "count_flops",
    "count_flops_at",
    "crosscheck_flops",
    "fvcore_crosscheck",
    "is_conv",
    "register_flop_formula",
    "training_flops",
    "unregister_flop_formula",
]
