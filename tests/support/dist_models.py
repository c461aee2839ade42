"""A model factory for the distributed tests: a small CNN whose forward pass fails on one
rank after some calls, while ``SSPROP_TEST_CRASH_RANK`` names that rank."""

from __future__ import annotations

import os

import torch
from torch import nn


class CrashingCnn(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, after: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes),
        )  # fmt: skip
        self.after = after
        self.calls = 0
        self.crash = os.environ.get("SSPROP_TEST_CRASH_RANK") == os.environ.get("RANK", "-")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.crash and self.training and self.calls > self.after:
            raise RuntimeError("injected failure on this rank")
        return self.body(x)


def crashing_cnn(in_channels: int = 1, num_classes: int = 3, after: int = 3) -> nn.Module:
    return CrashingCnn(in_channels, num_classes, after)


LOST: dict[str, object] = {}
"""The fake GPU of this rank's meter (``gpu_losing_cnn``) and whether an eval pass ran."""


class GpuLosingCnn(CrashingCnn):
    """Loses this rank's fake GPU at the first training step after the first evaluation
    (the second epoch's), while ``SSPROP_TEST_LOSE_GPU_RANK`` names the rank."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gpu = LOST.get("gpu")
        if x.device.type == "meta":  # FLOPs counted, not a pass of the run
            pass
        elif not self.training:
            LOST["evaluated"] = True
        elif LOST.get("evaluated") and gpu is not None and gpu.fail_after is None:  # type: ignore[attr-defined]
            gpu.fail_after = gpu.calls  # type: ignore[attr-defined]  # lost from now on
        return self.body(x)


def gpu_losing_cnn(in_channels: int = 1, num_classes: int = 3) -> nn.Module:
    """The CNN above, and the trainer's meter replaced by one over a fake GPU (every rank),
    the named rank's lost in its second epoch."""
    from ssprop_energy.harness.run import trainer
    from ssprop_energy.profilers import EnergyMeter
    from tests.support.profiler_fakes import FakeGpu, FakeNvml

    def meter(energy: object, device: object) -> EnergyMeter:
        gpu = FakeGpu("GPU-a", power_w=120.0)
        if os.environ.get("SSPROP_TEST_LOSE_GPU_RANK") == os.environ.get("RANK", "-"):
            LOST["gpu"] = gpu
        nvml = FakeNvml([gpu])
        return EnergyMeter(gpus="auto", cpu=None, codecarbon=False, interval_s=0.01, pynvml=nvml)  # type: ignore[arg-type]

    trainer.build_meter = meter  # type: ignore[assignment]
    return GpuLosingCnn(in_channels, num_classes, after=0)
