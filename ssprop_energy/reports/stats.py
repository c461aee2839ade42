"""The uncertainty of a comparison: a paired t interval over seeds.

Each seed gives one paired difference (a run against the baseline run at the same seed and
setup: a saving in percent, an accuracy change in points). Their mean is the method's figure;
its confidence interval is the two-sided Student t interval of the mean of the differences,
``mean ± t(1 - (1 - LEVEL) / 2, n - 1) * sd / sqrt(n)`` (sd with ddof 1). It contains zero
exactly when a paired t test of "no difference" is not significant at ``1 - LEVEL``. With one
seed there is no interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
"""The confidence level of every interval in a report."""
TEST = "paired t"
"""The name of the interval, as the headline and the notes print it."""


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` paired differences and its confidence interval (NaN bounds when
    ``n < 2`` or a difference is missing)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def exists(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def contains_zero(self) -> bool:
        """True when the interval exists and covers 0: the difference is within noise."""
        return self.exists and self.low <= 0.0 <= self.high


def t_quantile(level: float, n: int) -> float:
    """The two-sided Student t quantile of ``level`` for the mean of ``n`` values."""
    return float(stats.t.ppf(1.0 - (1.0 - level) / 2.0, n - 1))


def paired_interval(differences: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean and paired t interval of per-seed differences. A missing difference (NaN) leaves
    every figure NaN: a mean over a silent subset of seeds is never shown."""
    values = [float(d) for d in differences]
    n = len(values)
    if n == 0 or any(math.isnan(v) for v in values):
        return Interval(math.nan, math.nan, math.nan, n)
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(level, n) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)
