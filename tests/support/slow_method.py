"""A method with a known slowdown: dense training that sleeps ``fraction`` of each step's own
work, so its true time ratio to dense is ``1 + fraction`` (the controlled comparison's
benchmark and tests measure it against that)."""

from __future__ import annotations

import statistics
import time
from collections import deque
from typing import Literal

from pydantic import Field
from torch import nn

from ssprop_energy.methods import Method, MethodConfig, register_method

WINDOW = 9
"""How many recent gaps between steps the work estimate is the median of: a gap that holds
an evaluation or a shadow block is far longer than a step, and the median ignores it."""


class SleepyConfig(MethodConfig):
    name: Literal["sleepy"] = "sleepy"
    fraction: float = Field(0.1, gt=0.0)

    def label_parts(self) -> list[str]:
        return [self.name, f"fraction={self.fraction:g}"]


class Sleepy(Method):
    """Dense, plus a sleep at the start of each step of ``fraction`` times the median work
    of its recent steps (the time from one step's start to the next's, less its sleep)."""

    name = "sleepy"
    config_class = SleepyConfig
    config: SleepyConfig

    def __init__(self, config: MethodConfig, epochs: int) -> None:
        super().__init__(config, epochs)
        self._gaps: deque[float] = deque(maxlen=WINDOW)
        self._last: float | None = None
        self._slept = 0.0

    def start_step(self, model: nn.Module, epoch: int, step: int) -> float:
        now = time.perf_counter()
        if self._last is not None:
            self._gaps.append(now - self._last - self._slept)
        self._slept = 0.0
        if len(self._gaps) >= 3:
            self._slept = self.config.fraction * statistics.median(self._gaps)
            end = now + self._slept
            while time.perf_counter() < end:  # a busy wait: sleep's granularity is coarse
                pass
        self._last = time.perf_counter()
        return super().start_step(model, epoch, step)


def register() -> None:
    """Register the method (once; registering again is harmless)."""
    from ssprop_energy.methods import METHODS

    if "sleepy" not in METHODS.names():
        register_method(Sleepy)
