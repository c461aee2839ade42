"""The benchmarks' ``--device`` option: what runs where, and timing that waits for the GPU."""

from __future__ import annotations

import argparse

import torch

from ssprop_energy.profilers import find_gpus
from ssprop_energy.profilers.versions import driver_version


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")


def check_device(device: str) -> None:
    """Exit with one line where ``--device cuda`` has no CUDA."""
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: torch sees no CUDA GPU here")


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work, so a timer measures it (nothing on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def describe(device: str) -> str:
    """One line: torch, the device (GPU name, CUDA and NVIDIA driver, or CPU threads)."""
    if device != "cuda":
        return f"torch {torch.__version__}, device cpu ({torch.get_num_threads()} threads)"
    hardware = find_gpus([torch.cuda.current_device()])
    try:
        driver = driver_version(hardware)
    finally:
        hardware.close()
    return (
        f"torch {torch.__version__}, device cuda:{torch.cuda.current_device()} "
        f"({torch.cuda.get_device_name()}), CUDA {torch.version.cuda}, NVIDIA driver {driver}"
    )
