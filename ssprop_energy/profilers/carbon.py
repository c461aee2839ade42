"""CodeCarbon, offline: carbon intensity, its own tracker, and the CPU estimate.

- ``carbon_intensity_g_per_kwh(country, region)`` is the intensity CodeCarbon's offline
  tracker uses (its bundled energy-mix data; regional data for USA/CAN/CHN and Nordic
  bidding zones), so our emissions for our own joules agree with CodeCarbon's.
- ``CodeCarbonRun`` runs an ``OfflineEmissionsTracker`` (no network, no files, no lock file,
  quiet) beside the meter; its final ``EmissionsData`` is kept as a dict.
- ``cpu_estimate()`` is the CPU power model used without RAPL, the same on every supported
  CodeCarbon: ``TDP x (0.1 + 0.9 x load^3)`` (CodeCarbon 3.3's machine-wide load model)
  from the whole machine's CPU load, with the TDP from CodeCarbon's CPU table, else
  ``WATTS_PER_THREAD`` per logical CPU. Its figures are labelled ``estimated``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
from typing import Any, NamedTuple

import psutil

from .sources import EnergySource, PowerReading, SourceInfo, UnavailableSource

JOULES_PER_KWH = 3.6e6
WATTS_PER_THREAD = 4.0
"""TDP per logical CPU for a CPU missing from CodeCarbon's table (CodeCarbon 3.x's default)."""
LOAD_MODEL = "TDP x (0.1 + 0.9 x load^3)"
TABLE_BASIS = "CodeCarbon's CPU table"
"""``CpuTdp.basis`` of a TDP found in CodeCarbon's CPU table."""


def _quiet_codecarbon() -> None:
    """Errors only: importing CodeCarbon sets its logger to INFO, so import it first."""
    import codecarbon.external.logger  # noqa: F401

    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def carbon_intensity_g_per_kwh(country: str, region: str | None = None) -> float:
    """Grid carbon intensity (g CO2eq per kWh) for an ISO 3166-1 alpha-3 country code."""
    _quiet_codecarbon()
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    code = country.strip().upper()
    source = DataSource()
    if code not in source.get_global_energy_mix_data():
        raise ValueError(
            f"country: unknown ISO 3166-1 alpha-3 code {country!r} (e.g. USA, FRA, DEU)"
        )
    geo = GeoMetadata(country_iso_code=code, region=region)
    kg = Emissions(source).get_private_infra_emissions(Energy.from_energy(kWh=1.0), geo)
    return float(kg) * 1000.0


def emissions_kg(energy_j: float, intensity_g_per_kwh: float) -> float:
    """Emissions of ``energy_j`` joules at a carbon intensity in g CO2eq per kWh."""
    return energy_j / JOULES_PER_KWH * intensity_g_per_kwh / 1000.0


def cpu_load_power_w(tdp_w: float, load: float) -> float:
    """The CPU estimate's power in watts at a machine-wide CPU ``load`` in [0, 1]."""
    return tdp_w * (0.1 + 0.9 * load**3)


class CpuTdp(NamedTuple):
    """The CPU as CodeCarbon names it, its TDP in watts, and where the TDP comes from."""

    model: str
    tdp_w: float
    basis: str


@functools.cache
def codecarbon_tdp() -> CpuTdp:
    """The CPU's TDP from CodeCarbon's CPU table, else ``WATTS_PER_THREAD`` per logical CPU.

    CodeCarbon has no public call for the table alone: its ``TDP`` object gives the model,
    and ``TDP._get_cpu_power_from_registry`` (private; in every supported CodeCarbon)
    the table's entry. Its public ``TDP.tdp`` is not used, because it falls back differently
    by version (none in 2.x, 4 W per thread in 3.x). Cached: CPU detection takes ~2 s."""
    _quiet_codecarbon()
    from codecarbon.core.cpu import TDP

    if not callable(getattr(TDP, "_get_cpu_power_from_registry", None)):
        raise RuntimeError(
            "this CodeCarbon has no TDP._get_cpu_power_from_registry (CodeCarbon 2.7.1 to 3.3.2 "
            "have it), so its CPU table cannot be read"
        )
    detected = TDP()
    model = detected.model if detected.model and detected.model != "Unknown" else None
    table_w = detected._get_cpu_power_from_registry(model) if model else None
    if model and table_w:
        return CpuTdp(model, float(table_w), TABLE_BASIS)
    threads = os.cpu_count() or 1
    why = "not in CodeCarbon's CPU table" if model else "CPU model not detected"
    return CpuTdp(
        model or "unknown CPU",
        WATTS_PER_THREAD * threads,
        f"{WATTS_PER_THREAD:g} W x {threads} logical CPUs: {why}",
    )


class SystemLoad:
    """The whole machine's CPU load (0 to 1) between successive calls, from CPU times."""

    def __init__(self) -> None:
        self.last = self._busy_total()
        self.load = 0.0

    @staticmethod
    def _busy_total() -> tuple[float, float]:
        times = psutil.cpu_times()
        # on Linux, guest time is already counted in user and nice time
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        return total - times.idle - getattr(times, "iowait", 0.0), total

    def __call__(self) -> float:
        (busy, total), (last_busy, last_total) = self._busy_total(), self.last
        if total > last_total:
            self.load = min(max((busy - last_busy) / (total - last_total), 0.0), 1.0)
            self.last = (busy, total)
        return self.load


class CpuLoadEstimate(EnergySource):
    """The CPU estimate as an ``estimated`` power source (see the module docstring)."""

    def __init__(self, tdp: CpuTdp) -> None:
        self.tdp_w = tdp.tdp_w
        self.load = SystemLoad()
        device = f"{tdp.model}, {LOAD_MODEL}, TDP {tdp.tdp_w:g} W ({tdp.basis})"
        self.info = SourceInfo(name="cpu", provenance="estimated", reason=None, device=device)

    def sample(self) -> PowerReading:
        return PowerReading(power_w=cpu_load_power_w(self.tdp_w, self.load()))


def cpu_estimate() -> EnergySource:
    """The CPU estimate, or an ``unavailable`` source saying why there is none."""
    try:
        return CpuLoadEstimate(codecarbon_tdp())
    except Exception as exc:  # internals of another package: never crash on them
        return UnavailableSource("cpu", f"cannot use CodeCarbon's CPU table: {exc}")


def _tracker_options(tracker: type) -> dict[str, Any]:
    """Quiet, no output, no lock file, in what this CodeCarbon's tracker accepts: CodeCarbon
    3.3 has ``output_methods`` (empty: no file, API, logger...), older ones ``save_to_*``
    flags."""
    accepted: set[str] = set()
    for cls in tracker.__mro__:
        init = vars(cls).get("__init__")
        if init is not None:
            accepted |= set(inspect.signature(init).parameters)
    options: dict[str, Any] = {"log_level": "error", "allow_multiple_runs": True}
    if "output_methods" in accepted:
        options["output_methods"] = []
    else:
        options.update(save_to_file=False, save_to_api=False, save_to_logger=False)
    return options


class CodeCarbonRun:
    """An offline CodeCarbon tracker for the meter's lifetime."""

    def __init__(self, country: str, region: str | None = None) -> None:
        self.country = country.strip().upper()
        self.region = region
        self.tracker: Any = None
        self.result: dict[str, Any] | None = None
        self.error: str | None = None

    def start(self) -> None:
        _quiet_codecarbon()
        from codecarbon import OfflineEmissionsTracker

        options = _tracker_options(OfflineEmissionsTracker)
        if self.region:
            options["region"] = self.region
        try:
            self.tracker = OfflineEmissionsTracker(country_iso_code=self.country, **options)
            self.tracker.start()
        except Exception as exc:  # CodeCarbon failing must not stop a training run
            self.error = f"CodeCarbon could not start: {exc}"
            self.tracker = None

    def cpu_source(self) -> EnergySource:
        """The CPU estimate (:func:`cpu_estimate`), which needs CodeCarbon but not its tracker."""
        return cpu_estimate()

    def stop(self) -> None:
        if self.tracker is None:
            return
        try:
            self.tracker.stop()
            data = self.tracker.final_emissions_data
            self.result = dataclasses.asdict(data) if data is not None else None
        except Exception as exc:
            self.error = f"CodeCarbon failed to stop: {exc}"
        self.tracker = None
