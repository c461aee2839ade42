"""Binary gates with a straight-through gradient (Zhi et al., arXiv 2302.10798).

A gate turns on or off each unit it controls (the channels entering a convolution, or a
residual block's branch) from the input it sees: a score ``s = W · mean(x) + b`` per sample
and unit (``mean`` over the spatial positions), open probability ``sigmoid(s)``; the forward
pass uses the hard decision ``s > 0`` and the backward pass the gradient of ``sigmoid(s)``
(straight-through estimator). A running open fraction
(like BatchNorm's running mean) records how often each unit was open; in eval mode the gate is
the static consensus ``open fraction >= 0.5``, which is exactly what :func:`prune_gated` keeps.
"""

from __future__ import annotations

import torch
from torch import nn

INIT_OPEN = 0.5  # mean initial score: every gate starts open (scores uniform in (0, 1))
MOMENTUM = 0.1  # of the running open fraction, as BatchNorm's default


class Gate(nn.Module):
    """``units`` binary gates driven by the ``channels`` pooled features of their input."""

    open_fraction: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, channels: int, units: int, target: float, level: str) -> None:
        super().__init__()
        self.units = units
        self.target = target  # the keep the polarizing loss pulls this gate's group to
        self.level = level
        self.logits = nn.Linear(channels, units)
        nn.init.zeros_(self.logits.weight)
        nn.init.uniform_(self.logits.bias, 0.0, 2 * INIT_OPEN)
        self.register_buffer("open_fraction", torch.ones(units))
        self.scores: torch.Tensor | None = None  # logits of the last training forward

    def __getstate__(self) -> dict[str, object]:
        """Copies (``copy.deepcopy``, pickling) leave out the last batch's scores."""
        return {**self.__dict__, "scores": None}

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        """The gate values, shape (batch, units): hard 0/1 forward, straight-through backward
        while training; the consensus in eval mode."""
        if not self.training:
            return self.consensus().to(x.dtype).expand(x.shape[0], self.units)
        pooled = x.flatten(2).mean(-1)
        scores = self.logits(pooled / (pooled.norm(dim=1, keepdim=True) + 1e-6))
        probs = torch.sigmoid(scores)
        hard = (scores > 0).to(scores.dtype)
        with torch.no_grad():
            self.open_fraction.lerp_(hard.mean(0).to(self.open_fraction.dtype), MOMENTUM)
        self.scores = scores
        return hard + probs - probs.detach()

    def consensus(self) -> torch.Tensor:
        """The units kept: open in at least half of the recent inputs (bool, shape (units,)).
        A channel gate keeps at least its most open channel, so no layer loses all of them."""
        kept = self.open_fraction >= 0.5
        if self.level == "channel" and not kept.any():
            kept[self.open_fraction.argmax()] = True
        return kept


class GatedInput(nn.Module):
    """A layer whose input channels pass a gate first: ``layer(x * g)``.

    ``chain`` names, from the model's root, the modules whose output channels are these input
    channels (the producing convolution, then the per-channel layers in between), so pruning
    can remove a closed channel everywhere it exists."""

    def __init__(self, layer: nn.Module, channels: int, chain: list[str], target: float) -> None:
        super().__init__()
        self.gate = Gate(channels, channels, target, "channel")
        self.layer = layer
        self.chain = chain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate.decision(x)
        return self.layer(x * g.view(*g.shape, *([1] * (x.dim() - 2))))


class BlockGate(nn.Module):
    """One gate on a residual block's branch, driven by the block's input."""

    def __init__(self, channels: int, target: float) -> None:
        super().__init__()
        self.gate = Gate(channels, 1, target, "block")

    def forward(self, branch: torch.Tensor, block_input: torch.Tensor) -> torch.Tensor:
        g = self.gate.decision(block_input)
        return branch * g.view(-1, *([1] * (branch.dim() - 1)))


def gates(model: nn.Module) -> dict[str, Gate]:
    """Every gate of ``model`` by the name of the layer or block it controls."""
    found: dict[str, Gate] = {}
    for name, module in model.named_modules():
        if isinstance(module, GatedInput):
            found[module.chain[0]] = module.gate
        elif isinstance(module, BlockGate):
            found[name.rsplit(".", 1)[0] if "." in name else ""] = module.gate
    return found
