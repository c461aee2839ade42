"""The one rule for combining provenance labels."""

from __future__ import annotations

import pytest

from ssprop_energy.provenance import (
    LABELS,
    across_runs,
    check,
    combine,
    combine_sources,
    is_mixed,
    pairwise,
)


def test_labels_run_from_most_to_least_direct() -> None:
    assert LABELS == ("measured", "sampled", "split", "estimated", "unavailable")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["measured", "measured"], "measured"),
        (["measured", "sampled"], "sampled"),
        (["split", "sampled", "measured"], "split"),
        (["estimated", "measured"], "estimated"),
        (["measured", "unavailable"], "unavailable"),  # a sum with a missing part
        ([], "unavailable"),
    ],
)
def test_a_sum_of_parts_carries_its_weakest_label(labels: list[str], expected: str) -> None:
    assert combine(labels) == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["measured", "unavailable"], "measured"),  # mixed sources: the missing one adds nothing
        (["measured", "estimated", "unavailable"], "estimated"),
        (["unavailable", "unavailable"], "unavailable"),
        ([], "unavailable"),
    ],
)
def test_a_total_over_sources_ignores_sources_without_a_figure(
    labels: list[str], expected: str
) -> None:
    assert combine_sources(labels) == expected


@pytest.mark.parametrize("bad", ["Measured", "guess", "", None, float("nan")])
def test_an_unknown_label_is_an_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="unknown provenance label"):
        combine(["measured", bad])
    with pytest.raises(ValueError, match="unknown provenance label"):
        combine_sources([bad])
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(").replace(")", r"\)")):
        check(bad)


def test_means_over_runs_and_comparisons_flag_differing_labels() -> None:
    assert across_runs(["measured", "measured"]) == "measured"
    assert across_runs(["estimated", "measured", ""]) == "mixed: measured, estimated"
    assert across_runs(["", None]) == "unavailable"
    assert pairwise("measured", "measured") == "measured"
    assert pairwise("measured", "estimated") == "measured vs estimated"
    assert (
        across_runs(["measured vs estimated", "measured"])
        == "mixed: measured, measured vs estimated"
    )
    assert is_mixed("mixed: measured, estimated") and is_mixed("measured vs estimated")
    assert not is_mixed("measured")
    with pytest.raises(ValueError):
        across_runs(["measured", "bogus"])
