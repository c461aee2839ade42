"""A small residual CNN for gate tests and the gate budget benchmark: a stem convolution, one
residual block (its inner channels are the one gated layer), a pooled linear head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualCNN(nn.Module):
    """Stem convolution, one residual block (two convolutions), pooled linear head."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(x.mean((2, 3)))
