"""Finding the energy sources of this machine: NVML GPUs, the CPU with its fall-back, DRAM.

- :func:`find_gpus`: one source per selected CUDA-visible GPU, with the driver version; no
  pynvml, driver or GPU gives one ``gpu`` :class:`UnavailableSource` saying why.
- :func:`find_cpu`: ``cpu`` and RAPL's ``dram``. The CPU falls back in this order: RAPL
  (``measured``), else the CPU estimate (``estimated``, see ``carbon``) where the mode allows
  it, else
  an ``unavailable`` source whose reason lists why each step failed.
- :func:`discover`: both, as one :class:`Hardware` (GPUs first, then ``cpu``, ``dram``).

A missing device is an ordinary result, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

from ..provenance import UNAVAILABLE
from .carbon import CodeCarbonRun
from .environment import gpu_models
from .nvml import NvmlSession
from .rapl import POWERCAP_ROOT, rapl_sources
from .sources import EnergySource, UnavailableSource

GpuSelection = Literal["auto"] | list[int] | None
"""``"auto"`` (every CUDA-visible GPU), a list of CUDA indices, or None (no GPU source)."""
CpuMode = Literal["auto", "rapl", "codecarbon"]
"""``auto``: RAPL, else the CPU estimate; ``rapl`` or ``codecarbon``: that one only."""


@dataclass
class Hardware:
    """What discovery found: the sources, the GPUs' driver and the NVML session to close."""

    sources: list[EnergySource]
    driver: str | None = None
    session: NvmlSession | None = field(default=None, repr=False)

    @property
    def gpu_models(self) -> list[str]:
        """The marketing names of the NVML GPUs among the sources."""
        return gpu_models(self.sources)

    def close(self) -> None:
        """Release every source and the NVML session; idempotent."""
        for source in self.sources:
            source.close()
        if self.session is not None:
            self.session.close()


def find_gpus(gpus: GpuSelection = "auto", pynvml: ModuleType | None = None) -> Hardware:
    """The selected GPUs through NVML (``pynvml``: a module to use instead of the real one).

    ``gpus=None`` gives no source at all; otherwise there is at least one source, possibly
    an ``unavailable`` stand-in."""
    if gpus is None:
        return Hardware([])
    session = NvmlSession(pynvml)
    return Hardware(session.sources(gpus), session.driver_version(), session)


def find_cpu(
    cpu: CpuMode | None = "auto",
    carbon: CodeCarbonRun | None = None,
    powercap_root: Path = POWERCAP_ROOT,
) -> list[EnergySource]:
    """``[cpu, dram]`` (``dram`` only where RAPL was tried), or ``[]`` for ``cpu=None``.

    ``carbon``: a started CodeCarbon run; with it, the CPU estimate is the fall-back."""
    if cpu is None:
        return []
    rapl = rapl_sources(powercap_root) if cpu != "codecarbon" else {}
    dram = [rapl["dram"]] if rapl else []
    reasons: list[str] = []
    if rapl:
        if rapl["cpu"].info.provenance != UNAVAILABLE:
            return [rapl["cpu"], *dram]
        reasons.append(rapl["cpu"].info.reason or "RAPL unavailable")
    if cpu != "rapl":
        if carbon is None:
            reasons.append("CodeCarbon disabled")
        else:
            estimate = carbon.cpu_source()
            if estimate.info.provenance != UNAVAILABLE:
                return [estimate, *dram]
            reasons.append(estimate.info.reason or "no CPU estimate")
    return [UnavailableSource("cpu", "; ".join(reasons)), *dram]


def discover(
    gpus: GpuSelection = "auto",
    cpu: CpuMode | None = "auto",
    carbon: CodeCarbonRun | None = None,
    *,
    powercap_root: Path = POWERCAP_ROOT,
    pynvml: ModuleType | None = None,
) -> Hardware:
    """Every source: :func:`find_gpus`, then :func:`find_cpu`. Closes what it opened if
    the CPU search raises."""
    found = find_gpus(gpus, pynvml)
    try:
        found.sources += find_cpu(cpu, carbon, powercap_root)
    except BaseException:
        found.close()
        raise
    return found
