"""How a figure was obtained, and the one rule for combining the labels of several figures.

Labels, from most to least direct:

- ``measured``: an energy counter (NVML total energy, RAPL) read at both edges of a window at
  least as long as the counter's update period;
- ``sampled``: a trapezoid integral of power readings;
- ``split``: a counter's energy over a longer span, split by time onto a window too short
  for the counter;
- ``estimated``: a model (CodeCarbon's TDP-based CPU model);
- ``unavailable``: no figure at all (never a silent 0 J).

The rule:

- **A sum of parts of one quantity** (one source over windows, phases or epochs) carries its
  weakest label, and is ``unavailable`` if any part is: :func:`combine`.
- **A total over sources** (the ``energy_j`` of a window) sums the sources that have a
  figure, so it carries the weakest label among those and ignores ``unavailable`` ones; it is
  ``unavailable`` only when no source has a figure: :func:`combine_sources`.
- **A mean over runs** keeps a shared label; differing labels give ``mixed: a, b``, a flag a
  report lists in its notes; runs without the figure are left out: :func:`across_runs`.
- **A comparison of a run with its baseline** keeps a shared label; differing labels give
  ``a vs b``, also a flag: :func:`pairwise`.
- An empty list of labels is ``unavailable``. A label outside this vocabulary is an error
  (:class:`ValueError` naming it): the store never holds one, so meeting one means a damaged
  or hand-edited file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

Provenance = Literal["measured", "sampled", "split", "estimated", "unavailable"]

MEASURED: Provenance = "measured"
SAMPLED: Provenance = "sampled"
SPLIT: Provenance = "split"
ESTIMATED: Provenance = "estimated"
UNAVAILABLE: Provenance = "unavailable"
LABELS: tuple[str, ...] = get_args(Provenance)
"""Every label, from most to least direct (``unavailable`` last)."""
MIXED = "mixed"

_RANK = {label: rank for rank, label in enumerate(LABELS)}


def check(label: object) -> str:
    """``label`` itself if it is a provenance label; a ValueError naming it otherwise."""
    if not isinstance(label, str) or label not in _RANK:
        raise ValueError(f"unknown provenance label {label!r} (known: {', '.join(LABELS)})")
    return label


def combine(labels: Iterable[object]) -> str:
    """The label of a sum of parts of one quantity: the weakest part, ``unavailable`` if any
    part (or every part, or no part at all) is."""
    checked = [check(label) for label in labels]
    if not checked:
        return UNAVAILABLE
    return max(checked, key=_RANK.__getitem__)


def combine_sources(labels: Iterable[object]) -> str:
    """The label of a total over sources: the weakest source that has a figure;
    ``unavailable`` when none has."""
    return combine(label for label in map(check, labels) if label != UNAVAILABLE)


def across_runs(labels: Iterable[object]) -> str:
    """The label of a mean over runs: the shared label, or ``mixed: a, b`` (a flag).

    Labels may be flags themselves (a mean of comparisons); empty cells, runs without the
    figure, are left out."""
    present = [x for x in labels if isinstance(x, str) and x]
    distinct = sorted(
        {x if is_mixed(x) else check(x) for x in present}, key=lambda x: _RANK.get(x, len(_RANK))
    )
    if not distinct:
        return UNAVAILABLE
    if len(distinct) == 1:
        return distinct[0]
    return f"{MIXED}: {', '.join(distinct)}"


def pairwise(run: object, baseline: object) -> str:
    """The label of a comparison of a run with its baseline: shared, or ``a vs b`` (a flag).

    Either side may itself be a flag from :func:`across_runs`."""
    run_label, base_label = str(run), str(baseline)
    return run_label if run_label == base_label else f"{run_label} vs {base_label}"


def is_mixed(label: object) -> bool:
    """True for a flag built by :func:`across_runs` or :func:`pairwise` from differing labels."""
    return isinstance(label, str) and (label.startswith(MIXED) or " vs " in label)
