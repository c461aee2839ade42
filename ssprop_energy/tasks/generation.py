"""``generation``: a DDPM (eps-prediction loss, linear or cosine beta schedule) on real
images scaled to [-1, 1]; the validation denoising loss is the primary metric (lower is
better), ``fd_classifier`` scores strided DDIM samples, and the sampling cost and sample grids are
stored beside the epoch rows (docs/generation.md)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.image import imsave
from pydantic import Field, model_validator
from torch import nn

from ..data import DataConfig, Dataset, load_data, symmetric_range
from ..profilers import Measurement
from ..provenance import combine_sources
from ..store import ENERGY, FD_CLASSIFIER_DIR, PROVENANCE, RunStore, source_column
from .base import Batch, EpochEnd, Task, TaskConfig, register_task
from .diffusion import BetaSchedule, alpha_bars, ddim_sample, denoise_loss
from .fd_score import Reference, reference, score

DEFAULT_IMAGE_SIZE = 32
PER_SAMPLES = 64
"""Sampling time and energy are given per this many samples."""
GRID_PIXELS = 256
"""Sample grids are enlarged (nearest neighbour, whole factors) to about this width."""
SAMPLING_WINDOW = "sampling"


class GenerationConfig(TaskConfig):
    name: Literal["generation"] = "generation"
    timesteps: int = Field(1000, ge=2)
    beta_schedule: BetaSchedule = "linear"
    sample_steps: int = Field(50, ge=1)
    sample_eta: float = Field(1.0, ge=0.0, le=1.0)
    samples: int = Field(256, ge=8)
    sample_seed: int = 0
    score_every: int = Field(1, ge=1)
    grid_epochs: list[int] | None = None
    grid_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _check(self) -> GenerationConfig:
        if self.sample_steps > self.timesteps:
            raise ValueError(
                f"sample_steps: at most timesteps ({self.timesteps}), got {self.sample_steps}"
            )
        if self.grid_size > self.samples:
            raise ValueError(f"grid_size: at most samples ({self.samples}), got {self.grid_size}")
        bad = [e for e in self.grid_epochs or [] if e < 1]
        if bad:
            raise ValueError(f"grid_epochs: epochs count from 1, got {bad[0]}")
        return self


def grid_png(images: torch.Tensor) -> bytes:
    """Images (N x C x H x W, pixels in [-1, 1]) tiled in a square grid as a PNG file."""
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pixels = ((images.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    if c == 1:
        pixels = np.repeat(pixels, 3, axis=3)
    pad = 1
    canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3))
    for i, image in enumerate(pixels[:, :, :, :3]):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = image
    scale = max(1, round(GRID_PIXELS / canvas.shape[1]))
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    imsave(buffer, canvas, format="png")
    return buffer.getvalue()


def sampling_row(epoch: int, samples: int, steps: int, m: Measurement) -> dict[str, Any]:
    """sampling.csv's row of one metered sampling window."""
    total = m.total_energy_j
    scale = PER_SAMPLES / samples
    row: dict[str, Any] = {
        "epoch": epoch,
        "samples": samples,
        "steps": steps,
        "time_s": m.time_s,
        "energy_j": math.nan if total is None else total,
        "provenance": combine_sources(m.provenance.values()),
        "s_per_64": m.time_s * scale,
        "j_per_64": math.nan if total is None else total * scale,
    }
    for source, joules in m.energy_j.items():
        row[source_column(ENERGY, source)] = math.nan if joules is None else joules
        row[source_column(PROVENANCE, source)] = m.provenance[source]
    return row


@register_task
class Generation(Task):
    """A DDPM on the UNet: ``train_loss`` is the eps-prediction MSE at uniformly drawn steps;
    ``val_denoise_loss`` the same on the validation split with steps and noise drawn from
    ``sample_seed`` (the same draws every epoch); ``fd_classifier`` scores ``samples`` images
    drawn by strided DDIM sampling (NaN on epochs not scored)."""

    name = "generation"
    config_class = GenerationConfig
    primary_metric = "val_denoise_loss"
    higher_is_better = False
    config: GenerationConfig

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        self.abar = alpha_bars(self.config.timesteps, self.config.beta_schedule)
        self._reference: Reference | None = None

    @classmethod
    def check_data(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("name") == "synthetic":
            raise ValueError(
                "name: the generation task learns real images (digits, npz or a torchvision "
                "data set), not synthetic noise"
            )
        for field in ("samples", "classes"):
            if field in data:
                raise ValueError(
                    f"{field}: only the synthetic data set uses it, which the generation "
                    "task does not take"
                )
        return {"image_size": DEFAULT_IMAGE_SIZE, **data}

    def build_data(self, config: DataConfig) -> Dataset:
        return load_data(config, symmetric_range)

    def model_defaults(self, data: Dataset) -> dict[str, Any]:
        return {"in_channels": data.input_shape[0], "time_input": True}

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return denoise_loss(model, batch[0], self.abar), {}

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        total, n = 0.0, 0
        for i, (x, _) in enumerate(batches):
            draws = torch.Generator().manual_seed(self.config.sample_seed * 1_000_003 + i)
            total += float(denoise_loss(model, x, self.abar, draws, reduction="sum"))
            n += len(x)
        return {"val_denoise_loss": total / n}

    def end_epoch(self, model: nn.Module, end: EpochEnd) -> dict[str, Any]:
        """Draw ``samples`` images when the epoch is scored (every ``score_every``-th and the
        last) or in ``grid_epochs`` (default: the last): the metered window ``sampling`` goes
        to sampling.csv, the first ``grid_size`` images to a grid PNG when asked for."""
        cfg = self.config
        number, last = end.epoch + 1, end.epoch + 1 == end.epochs
        scored = number % cfg.score_every == 0 or last
        grid = number in cfg.grid_epochs if cfg.grid_epochs is not None else last
        if not (scored or grid):
            return {"fd_classifier": math.nan}
        ref = self._score_reference(end) if scored else None
        end.meter.begin(SAMPLING_WINDOW)
        images = ddim_sample(
            model,
            (cfg.samples, *end.data.input_shape),
            self.abar,
            cfg.sample_steps,
            cfg.sample_seed,
            end.device,
            eta=cfg.sample_eta,
        )
        m = end.meter.end(SAMPLING_WINDOW)
        store = RunStore(end.run_dir)
        store.write_sampling(sampling_row(end.epoch, cfg.samples, cfg.sample_steps, m))
        if grid:
            store.write_sample_grid(end.epoch, grid_png(images[: cfg.grid_size]))
        return {"fd_classifier": math.nan if ref is None else score(ref, images)}

    def _score_reference(self, end: EpochEnd) -> Reference:
        """The data set's classifier and real-image statistics, cached in the sweep folder."""
        if self._reference is None:
            self._reference = reference(end.data, end.run_dir.parent / FD_CLASSIFIER_DIR)
        return self._reference
