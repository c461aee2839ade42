"""Analytic forward/backward FLOP counters, training-run totals and cross-checks."""

from .counter import CONVENTION, FlopReport, count_flops
from .crosscheck import crosscheck_flops, fvcore_crosscheck
from .training import count_flops_at, training_flops

__all__ = [
    "CONVENTION",
    "FlopReport",
    "count_flops",
    "count_flops_at",
    "crosscheck_flops",
    "fvcore_crosscheck",
    "training_flops",
]
