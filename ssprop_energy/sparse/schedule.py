"""The drop scheduler: ``keep`` for every sparse layer, per epoch or per iteration.

Formulas (E epochs, e epoch from 0, p = keep, m = min_keep, T = period, i = in-epoch step):

=========  ===========================================  ===========================================
mode       by epoch                                     by iteration
=========  ===========================================  ===========================================
constant   p                                            p
linear     max(m, p - (p - m) * e / (E - 1))            max(m, p - (p - m) * (i % T) / T)
cosine     m + 0.5 * (p - m) * (1 + cos(pi * e/(E-1)))  m + 0.5 * (p - m) * (1 + cos(pi * i / T))
bar        p if e < E // 2 else m                       p if (i % T) < T // 2 else m
=========  ===========================================  ===========================================

Warmup epochs (e < warmup) are dense. With ``interleave`` the epochs after warmup alternate
dense, scheduled, dense, ... (``(e - warmup)`` even is dense). With E == 1 the by-epoch
``linear`` and ``cosine`` modes give p (there is no second epoch to decay to).
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

from torch import nn

from .convert import set_keep
from .selection import check_keep

MODES = ("constant", "linear", "cosine", "bar")
BY = ("epoch", "iteration")


@dataclass(frozen=True)
class DropScheduler:
    """Stateless keep schedule: ``keep_at(epoch, iteration)`` depends on its arguments only."""

    mode: str
    keep: float
    min_keep: float | None = None
    _: KW_ONLY
    epochs: int
    warmup: int = 0
    interleave: bool = False
    by: str = "epoch"
    period: int = 10

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.by not in BY:
            raise ValueError(f"by must be one of {BY}, got {self.by!r}")
        keep = check_keep(self.keep)
        object.__setattr__(self, "keep", keep)
        if self.min_keep is None:
            if self.mode != "constant":
                raise ValueError(f"min_keep is required for mode {self.mode!r}")
            min_keep = keep
        else:
            min_keep = check_keep(self.min_keep, "min_keep")
        object.__setattr__(self, "min_keep", min_keep)
        if min_keep > keep:
            raise ValueError(f"min_keep ({min_keep}) must not exceed keep ({keep})")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not isinstance(self.period, int) or self.period < 1:
            raise ValueError(f"period must be an integer >= 1, got {self.period!r}")

    def is_dense_epoch(self, epoch: int) -> bool:
        """True for warmup epochs and, with interleave, every other epoch after them."""
        if epoch < self.warmup:
            return True
        return self.interleave and (epoch - self.warmup) % 2 == 0

    def keep_at(self, epoch: int, iteration: int = 0) -> float:
        """Keep for ``epoch`` (from 0) and in-epoch step ``iteration`` (from 0)."""
        if epoch < 0 or iteration < 0:
            raise ValueError(f"epoch and iteration must be >= 0, got {epoch}, {iteration}")
        if self.is_dense_epoch(epoch):
            return 1.0
        p, m = self.keep, float(self.min_keep)  # type: ignore[arg-type]
        if self.mode == "constant":
            return p
        if self.by == "epoch":
            span, pos = self.epochs - 1, epoch
            if self.mode == "bar":
                return p if epoch < self.epochs // 2 else m
            if span == 0:
                return p
            if self.mode == "linear":
                return max(m, p - (p - m) * pos / span)
            return m + 0.5 * (p - m) * (1 + math.cos(math.pi * pos / span))
        t, i = self.period, iteration
        if self.mode == "linear":
            return max(m, p - (p - m) * (i % t) / t)
        if self.mode == "cosine":
            return m + 0.5 * (p - m) * (1 + math.cos(math.pi * i / t))
        return p if (i % t) < t // 2 else m

    def apply(self, model: nn.Module, epoch: int, iteration: int = 0) -> float:
        """Set every ssProp layer of ``model`` to ``keep_at(epoch, iteration)``; return it."""
        keep = self.keep_at(epoch, iteration)
        set_keep(model, keep)
        return keep

    def epoch_keeps(self, epoch: int, steps_per_epoch: int) -> list[float]:
        """Keep at every step of one epoch."""
        return [self.keep_at(epoch, i) for i in range(steps_per_epoch)]

    def mean_keep(self, steps_per_epoch: int | None = None) -> float:
        """Mean keep over the whole run (every step weighs the same).

        By-iteration schedules need ``steps_per_epoch``; by-epoch ones ignore it.
        """
        if self.by == "epoch" or self.mode == "constant":
            return sum(self.keep_at(e) for e in range(self.epochs)) / self.epochs
        if steps_per_epoch is None or steps_per_epoch < 1:
            raise ValueError("steps_per_epoch (>= 1) is required for a by-iteration schedule")
        total = sum(sum(self.epoch_keeps(e, steps_per_epoch)) for e in range(self.epochs))
        return total / (self.epochs * steps_per_epoch)
