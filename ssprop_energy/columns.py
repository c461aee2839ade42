"""The names of per-source columns, written once: ``energy_j_<source>``,
``provenance_<source>``, ``energy_j_<phase>_<source>`` (docs/store.md), and the phases
they name. Every room that writes or reads such a column spells it here."""

from __future__ import annotations

PHASES = ("data", "forward", "backward", "optimizer", "eval")
"""The metered phases of a training step (the first four) and of validation."""

ENERGY = "energy_j"
"""The kind of a source's joules: ``energy_j_<source>``, ``energy_j_<phase>_<source>``."""
PROVENANCE = "provenance"
"""The kind of a source's provenance label: ``provenance_<source>``."""
ENERGY_PER_1000 = "energy_j_per_1000"
"""The kind of a source's joules per 1,000 samples in inference.csv."""
ENERGY_PER_UNIT = "energy_j_per_unit"
"""The kind of a source's joules per calibrated unit in calibration.csv."""
KINDS = (ENERGY_PER_1000, ENERGY_PER_UNIT, ENERGY, PROVENANCE)
"""Every kind of per-source column, those that extend another first."""


def source_column(kind: str, source: str, phase: str | None = None) -> str:
    """The column of one source: ``<kind>_<source>``, or ``<kind>_<phase>_<source>``."""
    return f"{kind}_{source}" if phase is None else f"{kind}_{phase}_{source}"


def parse_source_column(column: str) -> tuple[str, str | None, str] | None:
    """``(kind, phase, source)`` of a per-source column (``source_column``'s inverse); None
    for any other column, a phase's total ``energy_j_<phase>`` included. Source names never
    contain ``_``, so the source is the last part."""
    for kind in KINDS:
        if not column.startswith(f"{kind}_"):
            continue
        parts = column.removeprefix(f"{kind}_").split("_")
        if len(parts) == 1 and parts[0] and parts[0] not in PHASES:
            return kind, None, parts[0]
        if len(parts) == 2 and parts[0] in PHASES and parts[1]:
            return kind, parts[0], parts[1]
        return None
    return None


HEALTH_KINDS = ("gpu_temp_c", "sm_clock_mhz", "power_limit_w", "throttle_reasons")
"""The kinds of a GPU's per-epoch state columns (``<kind>_<source>``, ``gpu_temp_c_gpu0``):
temperature (C), SM clock (MHz), enforced power limit (W) and NVML's clock event (throttle)
reason mask at the epoch's end (docs/energy.md#gpu-hygiene)."""
THROTTLE = "throttle_reasons"
"""The kind of a GPU's throttle reason mask column: ``throttle_reasons_<source>``."""
THROTTLE_REASONS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
}
"""NVML's clock event reason bits that mean the clocks were held down by power or heat; the
others (``0x1`` idle, ``0x2`` application clocks, ``0x10`` sync boost, ``0x100`` display
clocks) are not throttling."""


def throttle_names(mask: int) -> list[str]:
    """The power and thermal reasons set in an NVML reason mask, by name."""
    return [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
