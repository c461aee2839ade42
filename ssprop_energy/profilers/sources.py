"""The one interface every energy source implements, and the stand-in for a missing one.

A source is one thing we can charge joules to: ``gpu0``, ``cpu``, ``dram``. It is either

- a *counter* (``measured``): ``energy_j()`` returns a monotonic cumulative energy in joules
  (the NVML total-energy counter, a RAPL zone), read at window edges;
- a *power reading* (``sampled`` or ``estimated``): ``sample()`` returns the power now, and
  the meter's sampler integrates the readings over time;
- *unavailable*: it has a reason and never a figure.

Missing hardware is an ordinary case: it becomes an :class:`UnavailableSource`, never an
exception in the caller's code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..provenance import MEASURED, UNAVAILABLE, Provenance
from .health import GpuHealth


@dataclass(frozen=True)
class SourceInfo:
    """What a source is: ``name`` (never contains ``_``), how its figures are obtained,
    why it has none (``reason``, only for ``unavailable``) and which device it is."""

    name: str
    provenance: Provenance
    reason: str | None
    device: str


@dataclass(frozen=True)
class PowerReading:
    """One power sample; the optional fields are filled where the hardware reports them."""

    power_w: float
    utilization_pct: float | None = None
    memory_used_mb: float | None = None
    sm_clock_mhz: float | None = None
    temperature_c: float | None = None


class EnergySource(ABC):
    """A source of joules. Subclasses set ``info`` and implement what their provenance needs."""

    info: SourceInfo
    resolution_s: float = 0.0
    """How often the energy counter updates; windows shorter than this are split by time."""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def is_counter(self) -> bool:
        return self.info.provenance == MEASURED

    def energy_j(self) -> float:
        """Cumulative energy in joules since an arbitrary origin (counters only)."""
        raise NotImplementedError(f"{self.name} has no energy counter")

    @abstractmethod
    def sample(self) -> PowerReading | None:
        """The power now, or None where the source only has a counter."""

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release handles; idempotent."""

    def health(self) -> GpuHealth | None:
        """The device's state now (temperature, clocks, power limit, throttle reasons);
        None for sources that report none (every source but an NVIDIA GPU)."""
        return None


class UnavailableSource(EnergySource):
    """The empty stand-in: no hardware, no driver, no permission. It says why."""

    def __init__(self, name: str, reason: str, device: str = "") -> None:
        self.info = SourceInfo(name=name, provenance=UNAVAILABLE, reason=reason, device=device)

    def sample(self) -> PowerReading | None:
        return None
