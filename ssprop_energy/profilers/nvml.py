"""One source per visible NVIDIA GPU, through ``pynvml`` (package nvidia-ml-py).

- Energy: the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta and
  newer) where the GPU supports it (``measured``); otherwise the trapezoid integral of the
  sampler's ``nvmlDeviceGetPowerUsage`` readings (``sampled``).
- Visible GPUs follow ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-`` UUID prefixes, parsed
  like CUDA does: up to the first invalid entry). Indices are NVML's (PCI bus) order, which
  equals CUDA's only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``. Source ``gpuK`` is ``cuda:K``.
- Health: temperature, SM clock, enforced power limit and clock event (throttle) reasons,
  read at each epoch's end (:meth:`NvmlGpu.health`, docs/energy.md#gpu-hygiene).
- No pynvml, no driver, no GPU: one ``gpu`` source that is ``unavailable`` and says why.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from ..provenance import Provenance
from .health import GpuHealth
from .sources import EnergySource, PowerReading, SourceInfo, UnavailableSource

NVML_COUNTER_RESOLUTION_S = 0.1
"""The energy counter may update only every ~100 ms; shorter windows are split by time."""


def load_pynvml() -> ModuleType | str:
    """The pynvml module, or why it cannot be imported."""
    try:
        import pynvml
    except ImportError as exc:
        return f"pynvml not installed ({exc}); pip install nvidia-ml-py"
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlGpu(EnergySource):
    """One GPU: ``index`` is its CUDA-visible index (the name ``gpu<index>``), ``model`` its
    marketing name."""

    resolution_s = NVML_COUNTER_RESOLUTION_S

    def __init__(self, nvml: ModuleType, handle: Any, index: int, nvml_index: int) -> None:
        self.nvml = nvml
        self.handle = handle
        self.model = _text(nvml.nvmlDeviceGetName(handle))
        provenance: Provenance
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            provenance = "measured"
        except nvml.NVMLError:
            provenance = "sampled"
        self.info = SourceInfo(
            name=f"gpu{index}",
            provenance=provenance,
            reason=None,
            device=f"{self.model} (NVML index {nvml_index})",
        )
        self._extras = True

    def energy_j(self) -> float:
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) * 1e-3

    def sample(self) -> PowerReading:
        nvml, handle = self.nvml, self.handle
        power_w = nvml.nvmlDeviceGetPowerUsage(handle) * 1e-3
        if not self._extras:
            return PowerReading(power_w=power_w)
        try:
            return PowerReading(
                power_w=power_w,
                utilization_pct=float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                memory_used_mb=nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
                sm_clock_mhz=float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
                temperature_c=float(
                    nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                ),
            )
        except nvml.NVMLError:
            self._extras = False  # not cheap here: power only from now on
            return PowerReading(power_w=power_w)

    def health(self) -> GpuHealth:
        """Temperature, SM clock, enforced power limit and clock event (throttle) reasons
        now; a figure the GPU does not report is None."""
        nvml, handle = self.nvml, self.handle
        reasons = getattr(
            nvml,
            "nvmlDeviceGetCurrentClocksEventReasons",
            getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None),
        )
        return GpuHealth(
            temperature_c=self._read(
                lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            ),
            sm_clock_mhz=self._read(
                lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)
            ),
            power_limit_w=self._read(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) * 1e-3),
            throttle_reasons=None if reasons is None else _int(self._read(lambda: reasons(handle))),
        )

    def _read(self, call: Callable[[], float]) -> float | None:
        try:
            return float(call())
        except self.nvml.NVMLError:
            return None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def visible_indices(nvml: ModuleType, count: int, env: str | None) -> list[int]:
    """NVML indices of the CUDA-visible GPUs, in CUDA order."""
    if env is None:
        return list(range(count))
    uuids: list[str] | None = None
    chosen: list[int] = []
    for raw in env.split(","):
        entry = raw.strip()
        if entry.isdigit():
            index = int(entry)
        elif entry.startswith("GPU-"):
            if uuids is None:
                uuids = [
                    _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))
                    for i in range(count)
                ]
            matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
            if len(matches) != 1:
                break
            index = matches[0]
        else:
            break
        if index >= count or index in chosen:
            break
        chosen.append(index)
    return chosen


class NvmlSession:
    """Owns ``nvmlInit``/``nvmlShutdown`` and the GPU sources of one meter."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        loaded = load_pynvml() if nvml is None else nvml
        self.nvml: ModuleType | None = None
        self.reason: str | None = None
        if isinstance(loaded, str):
            self.reason = loaded
            return
        try:
            loaded.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.reason = f"NVML unavailable: {_text(exc) or type(exc).__name__}"
            return
        self.nvml = loaded

    def sources(self, gpus: Literal["auto"] | list[int] | None = "auto") -> list[EnergySource]:
        """One source per selected visible GPU (``"auto"``: all; a list: CUDA indices)."""
        if gpus is None:
            return []
        nvml = self.nvml
        if nvml is None:
            return [UnavailableSource("gpu", self.reason or "NVML unavailable")]
        try:
            count = nvml.nvmlDeviceGetCount()
            indices = visible_indices(nvml, count, os.environ.get("CUDA_VISIBLE_DEVICES"))
            wanted = range(len(indices)) if gpus == "auto" else gpus
            found: list[EnergySource] = []
            for cuda_index in wanted:
                if not 0 <= cuda_index < len(indices):
                    found.append(
                        UnavailableSource(
                            f"gpu{cuda_index}",
                            f"no visible GPU {cuda_index} ({len(indices)} visible)",
                        )
                    )
                    continue
                handle = nvml.nvmlDeviceGetHandleByIndex(indices[cuda_index])
                found.append(NvmlGpu(nvml, handle, cuda_index, indices[cuda_index]))
        except nvml.NVMLError as exc:
            return [UnavailableSource("gpu", f"NVML error while listing GPUs: {_text(exc)}")]
        if not found:
            return [UnavailableSource("gpu", "no visible NVIDIA GPU")]
        return found

    def driver_version(self) -> str | None:
        if self.nvml is None:
            return None
        try:
            return _text(self.nvml.nvmlSystemGetDriverVersion())
        except self.nvml.NVMLError:
            return None

    def close(self) -> None:
        if self.nvml is not None:
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlShutdown()
            self.nvml = None
