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


POWER = 0.80
"""The power at which a design's minimum detectable effect is stated."""


@dataclass(frozen=True)
class RatioInterval:
    """The geometric mean of ``n`` paired ratios (run / baseline) and its confidence
    interval, from the t interval of the mean of their logarithms; ``sd_log`` is the sample
    standard deviation of the log ratios (NaN below two ratios)."""

    ratio: float
    low: float
    high: float
    n: int
    sd_log: float

    @property
    def exists(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def relative_half_width(self) -> float:
        """The interval's half-width relative to the ratio, ``(high - low) / 2 / ratio``
        (NaN without an interval)."""
        return (self.high - self.low) / 2.0 / self.ratio if self.exists else math.nan


def ratio_interval(ratios: Iterable[float], level: float = LEVEL) -> RatioInterval:
    """Geometric mean and t interval of paired ratios: the paired t interval of the log
    ratios (:func:`paired_interval`), exponentiated. A ratio that is missing, zero or
    negative leaves every figure NaN."""
    values = [float(r) for r in ratios]
    n = len(values)
    if n == 0 or any(not (v > 0.0) for v in values):
        return RatioInterval(math.nan, math.nan, math.nan, n, math.nan)
    logs = [math.log(v) for v in values]
    interval = paired_interval(logs, level)
    sd = math.sqrt(mean_var(logs)[1]) if n > 1 else math.nan
    return RatioInterval(
        math.exp(interval.mean), math.exp(interval.low), math.exp(interval.high), n, sd
    )


def detectable_log_effect(sd: float, n: int, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true difference (in the units of ``sd``) that a two-sided paired t test
    at ``level`` detects with ``power`` from ``n`` differences of standard deviation ``sd``:
    ``(t(level) + t(power)) * sd / sqrt(n)``, both quantiles with ``n - 1`` degrees of
    freedom; NaN below two differences."""
    if n < 2 or math.isnan(sd):
        return math.nan
    one_sided = float(stats.t.ppf(power, n - 1))
    return (t_quantile(level, n) + one_sided) * sd / math.sqrt(n)


def pairs_needed(
    sd: float, effect: float, level: float = LEVEL, power: float = POWER
) -> int | None:
    """How many paired differences of standard deviation ``sd`` resolve a true difference of
    ``effect`` (same units) at ``level`` with ``power``: the least n >= 2 whose
    :func:`detectable_log_effect` is at most ``effect``; None when ``sd`` is unknown or
    ``effect`` is not positive, and at most 100,000."""
    if math.isnan(sd) or not effect > 0.0:
        return None
    n = 2
    while detectable_log_effect(sd, n, level, power) > effect:
        n = n * 2 if n < 64 else n + max(1, n // 8)
        if n > 100_000:
            return None
    low = max(2, n // 2)
    while low < n and detectable_log_effect(sd, low, level, power) > effect:
        low += 1
    return low
