"""How provenance labels combine: over epochs or sources (weakest wins) and over runs (flagged).

A figure built from parts carries its weakest label (measured < sampled < split < estimated);
a figure with a missing part is ``unavailable``. Runs whose labels differ are never averaged
silently: their mean carries ``mixed: a, b`` and the report lists them in its notes.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..profilers.sources import PROVENANCE_RANK

UNAVAILABLE = "unavailable"
MIXED = "mixed"


def _present(labels: Iterable[object]) -> list[str]:
    return [str(x) for x in labels if isinstance(x, str) and x]


def weakest(labels: Iterable[object]) -> str:
    """The label of a sum of parts: ``unavailable`` if any part is, else the least direct one."""
    present = _present(labels)
    if not present or UNAVAILABLE in present:
        return UNAVAILABLE
    return max(present, key=lambda label: PROVENANCE_RANK.get(label, len(PROVENANCE_RANK)))


def across_runs(labels: Iterable[object]) -> str:
    """The label of a mean over runs: the shared label, or ``mixed: a, b`` (a flag)."""
    distinct = sorted(set(_present(labels)), key=lambda x: PROVENANCE_RANK.get(x, 99))
    if not distinct:
        return UNAVAILABLE
    if len(distinct) == 1:
        return distinct[0]
    return f"{MIXED}: {', '.join(distinct)}"


def is_mixed(label: object) -> bool:
    """True for a label produced by :func:`across_runs` from differing labels."""
    return isinstance(label, str) and (label.startswith(MIXED) or " vs " in label)


def pairwise(run: object, baseline: object) -> str:
    """The label of a comparison of a run with its baseline: shared, or ``a vs b`` (a flag)."""
    run_label, base_label = str(run), str(baseline)
    return run_label if run_label == base_label else f"{run_label} vs {base_label}"
