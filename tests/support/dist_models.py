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
