"""What a run ran on, for meta.json: python, torch, cuda, platform, cpu, gpus, driver."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from .nvml import NvmlGpu, NvmlSession
from .sources import EnergySource


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_models(sources: list[EnergySource]) -> list[str]:
    """The marketing names of the GPUs among ``sources``."""
    return [s.model for s in sources if isinstance(s, NvmlGpu)]


def environment(gpus: list[str] | None = None, driver: str | None = None) -> dict[str, Any]:
    """The ``environment`` entry of meta.json. Without ``gpus``, NVML is asked directly."""
    if gpus is None:
        session = NvmlSession()
        try:
            gpus, driver = gpu_models(session.sources("auto")), session.driver_version()
        finally:
            session.close()
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "gpus": gpus,
        "driver": driver,
    }
