"""CodeCarbon, offline: carbon intensity, its own tracker, and its CPU power model.

- ``carbon_intensity_g_per_kwh(country, region)`` is the intensity CodeCarbon's offline
  tracker uses (its bundled energy-mix data; regional data for USA/CAN/CHN and Nordic
  bidding zones), so our emissions for our own joules agree with CodeCarbon's.
- ``CodeCarbonRun`` runs an ``OfflineEmissionsTracker`` (no network, no files, no lock file,
  quiet) beside the meter; its final ``EmissionsData`` is kept as a dict.
- ``CodeCarbonCpu`` is CodeCarbon's CPU model (in CodeCarbon 3.x offline without RAPL:
  ``TDP x (0.1 + 0.9 x load^3)`` from system CPU load, or a TDP constant), evaluated by our
  sampler; its figures are labelled ``estimated``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from .sources import EnergySource, PowerReading, SourceInfo, UnavailableSource

JOULES_PER_KWH = 3.6e6
ESTIMATE_MODES = ("cpu_load", "constant")
"""CodeCarbon CPU modes that are models, not measurements (RAPL modes are measurements)."""


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


class CodeCarbonCpu(EnergySource):
    """CodeCarbon's CPU power model, as an ``estimated`` power source."""

    def __init__(self, hardware_cpu: Any, description: str) -> None:
        self.cpu = hardware_cpu
        self.info = SourceInfo(name="cpu", provenance="estimated", reason=None, device=description)
        self.sample()  # primes the CPU-load baseline (CodeCarbon sleeps 50 ms once)

    def sample(self) -> PowerReading:
        return PowerReading(power_w=float(self.cpu._get_power_from_cpus().W))


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

        kwargs: dict[str, Any] = {"region": self.region} if self.region else {}
        try:
            from codecarbon.output_methods.base_output import OutputMethod  # noqa: F401

            kwargs["output_methods"] = []  # CodeCarbon >= 3.3: no file, API, logger, ...
        except ImportError:
            kwargs.update(save_to_file=False, save_to_api=False, save_to_logger=False)
        try:
            self.tracker = OfflineEmissionsTracker(
                country_iso_code=self.country,
                log_level="error",
                allow_multiple_runs=True,
                **kwargs,
            )
            self.tracker.start()
        except Exception as exc:  # CodeCarbon failing must not stop a training run
            self.error = f"CodeCarbon could not start: {exc}"
            self.tracker = None

    def cpu_source(self) -> EnergySource:
        """CodeCarbon's CPU model as a source, or why there is none."""
        if self.tracker is None:
            return UnavailableSource("cpu", self.error or "CodeCarbon disabled")
        try:
            from codecarbon.external.hardware import CPU

            tracked = [h for h in self.tracker._hardware if isinstance(h, CPU)]
            if not tracked:
                return UnavailableSource("cpu", "CodeCarbon found no CPU model")
            cpu = tracked[0]
            if cpu._mode not in ESTIMATE_MODES:
                return UnavailableSource(
                    "cpu", f"CodeCarbon measures the CPU by {cpu._mode}, which we cannot read"
                )
            own = CPU.from_utils(".", cpu._mode, cpu._model, cpu._tdp, tracking_mode="machine")
            description = f"{cpu._model}, CodeCarbon {cpu._mode} model, TDP {cpu._tdp} W"
            return CodeCarbonCpu(own, description)
        except Exception as exc:  # internals of another package: never crash on them
            return UnavailableSource("cpu", f"cannot use CodeCarbon's CPU model: {exc}")

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
