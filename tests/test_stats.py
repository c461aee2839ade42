"""The paired t interval against hand-computed values (t quantiles from a printed table)."""

from __future__ import annotations

import math

import pytest

from ssprop_energy.stats import paired_interval, t_quantile

# two-sided 95% Student t quantiles t(0.975, df) for df = 1, 2, 4 (any statistics table)
T_975 = {1: 12.7062, 2: 4.3027, 4: 2.7764}


@pytest.mark.parametrize("df", sorted(T_975))
def test_t_quantiles_match_the_table(df: int) -> None:
    assert t_quantile(0.95, df + 1) == pytest.approx(T_975[df], abs=1e-4)


def test_three_seeds_that_straddle_zero_are_within_noise() -> None:
    # mean 2, sd 1, standard error 1 / sqrt(3)
    interval = paired_interval([1.0, 2.0, 3.0])
    half = T_975[2] / math.sqrt(3)
    assert (interval.mean, interval.n) == (2.0, 3)
    assert interval.low == pytest.approx(2.0 - half, abs=1e-4)
    assert interval.high == pytest.approx(2.0 + half, abs=1e-4)
    assert interval.contains_zero


def test_a_consistent_saving_excludes_zero() -> None:
    interval = paired_interval([10.0, 12.0, 14.0])  # mean 12, sd 2
    half = T_975[2] * 2.0 / math.sqrt(3)
    assert (interval.low, interval.high) == pytest.approx((12.0 - half, 12.0 + half), abs=1e-4)
    assert interval.exists and not interval.contains_zero


def test_two_seeds_use_one_degree_of_freedom() -> None:
    interval = paired_interval([1.0, 3.0])  # mean 2, sd sqrt(2), standard error 1
    assert (interval.low, interval.high) == pytest.approx((2.0 - 12.7062, 2.0 + 12.7062), abs=1e-4)


def test_five_seeds() -> None:
    values = [4.0, 6.0, 5.0, 3.0, 7.0]  # mean 5, sd sqrt(2.5)
    interval = paired_interval(values)
    half = T_975[4] * math.sqrt(2.5) / math.sqrt(5)
    assert (interval.low, interval.high) == pytest.approx((5.0 - half, 5.0 + half), abs=1e-4)


def test_equal_differences_give_a_point_interval() -> None:
    interval = paired_interval([5.0, 5.0])
    assert (interval.mean, interval.low, interval.high) == (5.0, 5.0, 5.0)
    assert not interval.contains_zero


def test_one_seed_has_a_mean_and_no_interval() -> None:
    interval = paired_interval([4.0])
    assert interval.mean == 4.0 and interval.n == 1
    assert not interval.exists and not interval.contains_zero
    assert math.isnan(interval.low) and math.isnan(interval.high)


def test_a_missing_difference_leaves_every_figure_empty() -> None:
    for values in ([1.0, math.nan, 3.0], []):
        interval = paired_interval(values)
        assert math.isnan(interval.mean) and not interval.exists


def test_ratio_interval_is_the_exponentiated_interval_of_the_log_ratios() -> None:
    import math

    from ssprop_energy.stats import paired_interval, ratio_interval

    ratios = [0.8, 0.85, 0.78, 0.82]
    logs = paired_interval([math.log(r) for r in ratios])
    got = ratio_interval(ratios)
    assert math.isclose(got.ratio, math.exp(logs.mean))
    assert math.isclose(got.low, math.exp(logs.low)) and math.isclose(got.high, math.exp(logs.high))
    assert got.relative_half_width == (got.high - got.low) / 2 / got.ratio
    assert math.isnan(ratio_interval([0.9]).low) and math.isnan(ratio_interval([1.0, 0.0]).ratio)


def test_detectable_effect_and_pairs_needed_agree() -> None:
    import math

    from ssprop_energy.stats import detectable_log_effect, pairs_needed

    sd = 0.1
    n = pairs_needed(sd, 0.05)
    assert n is not None and n > 2
    assert detectable_log_effect(sd, n) <= 0.05 < detectable_log_effect(sd, n - 1)
    # the normal approximation: (1.96 + 0.84)^2 * (sd / effect)^2, a little below the t answer
    assert n >= math.ceil((1.96 + 0.8416) ** 2 * (sd / 0.05) ** 2)
    assert pairs_needed(math.nan, 0.05) is None and math.isnan(detectable_log_effect(sd, 1))
