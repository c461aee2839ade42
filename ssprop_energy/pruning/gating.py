"""Gating a model, the polarizing loss and the gates' state (see docs/pruning.md)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Literal

import pandas as pd
import torch
from torch import nn

from .gates import BlockGate, Gate, GatedInput, gates
from .graph import channel_chains, residual_blocks

Level = Literal["channel", "block"]
LEVELS: tuple[str, ...] = ("channel", "block")
POLARIZATION = 0.1  # weight of the polarizing term against the keep term (docs/pruning.md)
BLOCK_GATE = "branch_gate"
TOLERANCE = 0.05  # a group kept within this of its target (or half a unit) has reached it
POLARIZED = 0.1  # a group whose mean polarization is at most this is polarized
BUDGET = (
    "train the gates longer before pruning (a later prune_at_epoch, or more steps; about "
    "100 steps under SGD with momentum, 0.3 / lr under Adam or AdamW: "
    "docs/pruning.md#training-budget)"
)
STATE_COLUMNS = [
    "layer",
    "level",
    "channels",
    "kept",
    "open_fraction",
    "polarization",
    "target",
    "distance",
]


class GateWarning(UserWarning):
    """A gated group far from its target keep, or not polarized, when it is pruned."""


def check_target(target_keep: float) -> float:
    """A target keep must lie in (0, 1]."""
    if not 0.0 < target_keep <= 1.0:
        raise ValueError(f"must be in (0, 1], got {target_keep}")
    return float(target_keep)


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"level: must be one of {', '.join(LEVELS)}, got {level!r}")
    return level


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, child = name.rpartition(".")
    return model.get_submodule(parent), child


def add_gates(
    model: nn.Module,
    target_keep: float = 0.5,
    level: Level = "channel",
    skip: Iterable[str] = (),
) -> nn.Module:
    """Put binary gates into ``model`` (in place; returns it).

    ``level="channel"``: a gate on each channel between two convolutions that can be pruned
    (docs/pruning.md says which); ``"block"``: one gate on the branch of each residual block.
    ``skip``: module-name patterns (the producing convolution's or the block's name) left
    ungated. ``target_keep``: the fraction of gated channels (or blocks) the polarizing loss
    keeps open.
    """
    try:
        target = check_target(target_keep)
    except ValueError as exc:
        raise ValueError(f"target_keep: {exc}") from None
    check_level(level)
    if gates(model):
        raise ValueError("the model already has gates")
    patterns = list(skip)

    def skipped(name: str) -> bool:
        return any(fnmatchcase(name, p) for p in patterns)

    placed: list[Gate] = []
    if level == "channel":
        for chain in channel_chains(model):
            if skipped(chain.producer):
                continue
            parent, child = _parent(model, chain.consumer)
            wrapped = GatedInput(
                getattr(parent, child), chain.channels, [chain.producer, *chain.between], target
            )
            setattr(parent, child, wrapped)
            placed.append(wrapped.gate)
    else:
        for block in residual_blocks(model):
            if skipped(block.name):
                continue
            graph = block.graph
            gate = BlockGate(block.channels, target)
            graph.add_submodule(BLOCK_GATE, gate)
            with graph.graph.inserting_before(block.total):
                gated = graph.graph.call_module(BLOCK_GATE, (block.branch, block.input))
            block.total.replace_input_with(block.branch, gated)
            graph.recompile()
            parent, child = _parent(model, block.name)
            setattr(parent, child, graph)
            placed.append(gate.gate)
    if not placed:
        raise ValueError(f"no {level} of the model can be gated (docs/pruning.md says which)")
    device = next(model.parameters()).device
    return model.to(device)


def polarization_loss(model: nn.Module) -> torch.Tensor:
    """The regularizer of the gates' last training forward pass (0 when none ran).

    A group is one layer's channel gates, or all block gates together. With ``s_u`` unit
    u's score and ``p_u = sigmoid(s_u)`` its open probability, both averaged over the batch,
    ``k`` the group's fraction of open decisions and ``n`` its number of units, the loss sums
    over groups ``n |k - target| + POLARIZATION * sum_u 4 p_u (1 - p_u)``. ``k``'s gradient
    goes straight through to each unit's bias ``b_u`` (``d k / d b_u = 1 / n``) and, scaled
    by the group's distance ``|k - target|``, to the input-dependent part ``W_u . m`` of its
    score: each unit's gradient is the same whatever the size and number of groups, and the
    gate weights are pulled towards the target while the group is far from it
    (docs/pruning.md).
    """
    found = [g for g in gates(model).values() if g.scores is not None]
    if not found:
        return torch.zeros((), device=next(model.parameters()).device)
    groups = [[g] for g in found if g.level == "channel"]
    groups.append([g for g in found if g.level == "block"])
    terms = []
    for group in (g for g in groups if g):
        scores = torch.cat([g.scores for g in group], dim=1)  # type: ignore[misc]
        opened = (scores > 0).to(scores.dtype).mean(0)
        bias = torch.cat([g.logits.bias for g in group])
        weighed = scores.mean(0) - bias  # the input-dependent part of each unit's score
        distance = (opened.mean() - group[0].target).abs().detach()
        keep = (opened + bias - bias.detach() + distance * (weighed - weighed.detach())).mean()
        p = torch.sigmoid(scores).mean(0)
        polarization = (4 * p * (1 - p)).sum()
        terms.append(len(p) * (keep - group[0].target).abs() + POLARIZATION * polarization)
    return torch.stack(terms).sum()


def gate_states(model: nn.Module) -> pd.DataFrame:
    """Per gated layer (or block): ``layer``, ``level``, ``channels`` (gated units),
    ``kept`` (units the consensus keeps), ``open_fraction`` (mean over units of how often
    each was open), ``polarization`` (mean over units of ``2 min(f, 1 - f)``; 0: every
    unit always open or always closed), ``target`` (the keep the polarizing loss pulls to)
    and ``distance``: the group's kept fraction minus its target (a group is one layer's
    channels, or all blocks together, so every block row shows the same distance)."""
    rows = []
    for name, gate in gates(model).items():
        f = gate.open_fraction.detach().float().cpu()
        rows.append(
            {
                "layer": name,
                "level": gate.level,
                "channels": gate.units,
                "kept": int(gate.consensus().sum()),
                "open_fraction": float(f.mean()),
                "polarization": float((2 * torch.minimum(f, 1 - f)).mean()),
                "target": gate.target,
            }
        )
    states = pd.DataFrame(rows, columns=STATE_COLUMNS)
    channel = states["level"] == "channel"
    states.loc[channel, "distance"] = states["kept"] / states["channels"] - states["target"]
    if (~channel).any():
        blocks = states[~channel]
        kept = blocks["kept"].sum() / blocks["channels"].sum()
        states.loc[~channel, "distance"] = kept - blocks["target"].iloc[0]
    return states.astype({"distance": float})


def gate_warnings(states: pd.DataFrame) -> list[str]:
    """One line per group of :func:`gate_states` that is far from its target keep (more
    than ``TOLERANCE``, or half a unit for small groups) or not polarized (mean polarization
    above ``POLARIZED``), saying what to change; empty when every group is fine."""
    lines = []
    channel = states[states["level"] == "channel"]
    groups = [(f"gated layer {r.layer}", [r]) for r in channel.itertuples()]
    blocks = list(states[states["level"] != "channel"].itertuples())
    if blocks:
        groups.append(("gated blocks", blocks))
    for what, rows in groups:
        units = sum(int(r.channels) for r in rows)
        kept = sum(int(r.kept) for r in rows)
        target, distance = float(rows[0].target), float(rows[0].distance)
        polarization = sum(float(r.polarization) * int(r.channels) for r in rows) / units
        far = abs(distance) > max(TOLERANCE, 0.5 / units) + 1e-9
        unpolarized = polarization > POLARIZED
        if not (far or unpolarized):
            continue
        problems = []
        if far:
            problems.append(
                f"{kept} of {units} kept ({kept / units:.2f}), {abs(distance):.2f} "
                f"{'above' if distance > 0 else 'below'} the target {target:g}"
            )
        if unpolarized:
            problems.append(
                f"not polarized (polarization {polarization:.2f} > {POLARIZED:g}: "
                "some gates open for some inputs only)"
            )
        lines.append(f"{what}: {', '.join(problems)} at pruning; {BUDGET}")
    return lines


def warn_gates(states: pd.DataFrame, stacklevel: int = 2) -> list[str]:
    """Warn (``GateWarning``) for every line of :func:`gate_warnings`; returns the lines."""
    lines = gate_warnings(states)
    for line in lines:
        warnings.warn(line, GateWarning, stacklevel=stacklevel + 1)
    return lines
