"""DDPM pieces: the beta schedule, the eps-prediction loss and DDIM-style strided sampling.

The denoiser is called as ``model(x_t, t / timesteps)``: noisy images and each sample's
diffusion time in [0, 1).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

BetaSchedule = Literal["linear", "cosine"]
COSINE_OFFSET = 0.008
"""The ``s`` of the cosine schedule (Nichol and Dhariwal, 2021)."""
MAX_BETA = 0.999


def alpha_bars(timesteps: int, schedule: BetaSchedule) -> torch.Tensor:
    """The cumulative products of (1 - beta_t), t = 0 .. timesteps - 1 (float64).

    ``linear``: betas from 1e-4 to 0.02 at 1000 steps (Ho et al., 2020), scaled by
    1000 / timesteps so fewer steps reach the same noise; ``cosine``: the cosine schedule,
    betas clipped at 0.999."""
    if schedule == "linear":
        scale = 1000 / timesteps
        betas = torch.linspace(1e-4 * scale, 0.02 * scale, timesteps, dtype=torch.float64)
    else:
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)
    return torch.cumprod(1 - betas.clamp(max=MAX_BETA), dim=0)


def denoise_loss(
    model: nn.Module,
    x0: torch.Tensor,
    abar: torch.Tensor,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The eps-prediction loss: mean squared error between the noise added at a uniformly
    drawn step and the model's prediction of it (``generator``: draws on the CPU from it,
    else from the global RNG on the images' device)."""
    n = len(x0)
    device = None if generator is not None else x0.device
    t = torch.randint(0, len(abar), (n,), generator=generator, device=device)
    noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    t, noise = t.to(x0.device), noise.to(x0.device)
    a = abar.to(x0.device)[t].to(x0.dtype).view(n, *[1] * (x0.dim() - 1))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    pred = model(x_t, t.to(x0.dtype) / len(abar))
    per_sample = F.mse_loss(pred.float(), noise.float(), reduction="none").flatten(1).mean(1)
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def ddim_times(timesteps: int, steps: int) -> list[int]:
    """The ``steps`` diffusion steps DDIM visits, from timesteps - 1 down to 0."""
    steps = min(steps, timesteps)
    return sorted({round(v) for v in torch.linspace(0, timesteps - 1, steps).tolist()})[::-1]


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    shape: tuple[int, ...],
    abar: torch.Tensor,
    steps: int,
    seed: int,
    device: torch.device,
    batch_size: int = 256,
    eta: float = 0.0,
) -> torch.Tensor:
    """``shape[0]`` images drawn by DDIM over ``steps`` strided steps (``eta`` 0:
    deterministic; 1: as noisy as DDPM's ancestral sampling), all noise drawn on the CPU from
    ``seed`` (the same images for the same weights, whatever the device's RNG state); pixels
    clamped to [-1, 1]."""
    draws = torch.Generator().manual_seed(seed)
    times = ddim_times(len(abar), steps)
    out = []
    for start in range(0, shape[0], batch_size):
        chunk = (min(batch_size, shape[0] - start), *shape[1:])
        x = torch.randn(chunk, generator=draws).to(device)
        for i, t in enumerate(times):
            a = float(abar[t])
            a_prev = float(abar[times[i + 1]]) if i + 1 < len(times) else 1.0
            t_in = torch.full((len(x),), t / len(abar), device=device, dtype=x.dtype)
            eps = model(x, t_in).to(x.dtype)
            x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
            sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(chunk, generator=draws).to(device)
        out.append(x.clamp(-1, 1).cpu())
    return torch.cat(out)
