"""A run's checkpoint after each finished epoch: what resume needs to continue exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ...store import RunStore, atomic_write
from .build import RunContext


def save_checkpoint(path: Path, ctx: RunContext, epochs_done: int) -> None:
    """Model, optimizer, method and RNG state after ``epochs_done`` epochs, written atomically."""
    state = {
        "epochs_done": epochs_done,
        "model": ctx.model.state_dict(),
        "optimizer": ctx.optimizer.state_dict(),
        "method": ctx.method.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path, ctx: RunContext) -> int:
    """Restore ``ctx`` from ``path``; returns the epochs it had finished."""
    state = torch.load(path, map_location=ctx.device, weights_only=False)
    rebuilt = ctx.method.load_state_dict(ctx.model, state.get("method", {}))
    if rebuilt is not None:
        ctx.replace_model(rebuilt)
    ctx.model.load_state_dict(state["model"])
    ctx.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epochs_done"])


def resume_point(store: RunStore, checkpoint: Path, ctx: RunContext) -> tuple[int, pd.DataFrame]:
    """The first epoch to train and the stored rows before it (rows past the checkpoint, or
    rows without one, are dropped: their epochs are trained again); ``ctx`` restored from
    the checkpoint."""
    epochs = store.read_epochs()
    if epochs.empty:
        return 0, epochs
    start = load_checkpoint(checkpoint, ctx) if checkpoint.is_file() else 0
    epochs = epochs[epochs["epoch"] < start] if start else epochs.iloc[0:0]
    store.write_epochs(epochs)
    return start, epochs
