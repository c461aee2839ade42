"""The statistics every interval uses: the 95% level, the two-sided Student t quantile, the
mean and sample variance, the t interval around a value, and the paired t interval of a
comparison over seeds.

A report's comparison: each seed gives one paired difference (a run against the baseline
run at the same seed and setup: a saving in percent, an accuracy change in points). Their
mean is the method's figure; its confidence interval is the two-sided Student t interval of
the mean of the differences, ``mean ± t(1 - (1 - LEVEL) / 2, n - 1) * sd / sqrt(n)`` (sd
with ddof 1). It contains zero exactly when a paired t test of "no difference" is not
significant at ``1 - LEVEL``. With one seed there is no interval.

A calibration's prices (docs/estimate.md, docs/phases.md) use the same level and quantile
through :func:`t_interval`, with the variance and degrees of freedom their rules give.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
"""The confidence level of every interval: a report's and a calibration's (two-sided)."""
TEST = "paired t"
"""The name of a comparison's interval, as a report's headline and notes print it."""


def t_quantile(level: float, n: int) -> float:
    """The two-sided Student t quantile of ``level`` for the mean of ``n`` values
    (``n - 1`` degrees of freedom)."""
    return float(stats.t.ppf(1.0 - (1.0 - level) / 2.0, n - 1))


def mean_var(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (ddof 1) of ``values``; the variance is 0 below two
    values."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.fsum((v - mean) ** 2 for v in values) / (n - 1)


def t_interval(value: float, var: float, df: int, level: float = LEVEL) -> tuple[float, float]:
    """(low, high): the two-sided Student t interval of ``level`` around ``value``, whose
    variance is ``var``, with ``df`` degrees of freedom."""
    half = t_quantile(level, df + 1) * math.sqrt(var)
    return value - half, value + half


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


def paired_interval(differences: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean and paired t interval of per-seed differences. A missing difference (NaN) leaves
    every figure NaN: a mean over a silent subset of seeds is never shown."""
    values = [float(d) for d in differences]
    n = len(values)
    if n == 0 or any(math.isnan(v) for v in values):
        return Interval(math.nan, math.nan, math.nan, n)
    mean, var = mean_var(values)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    low, high = t_interval(mean, var / n, n - 1, level)
    return Interval(mean, low, high, n)
