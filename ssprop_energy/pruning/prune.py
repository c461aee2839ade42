"""Remove what the gates closed: a smaller model with the same outputs and no gates."""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import fx, nn

from .gates import BlockGate, GatedInput, gates
from .gating import gate_states, warn_gates
from .graph import split_residual

Masks = dict[str, torch.Tensor]  # gated layer or block name -> units kept (bool)


def consensus(model: nn.Module) -> Masks:
    """The units each gate keeps: open in at least half of the recent inputs."""
    return {name: gate.consensus().detach().cpu().clone() for name, gate in gates(model).items()}


def prune_gated(model: nn.Module) -> nn.Module:
    """A copy of ``model`` without its closed channels and blocks, and without gates.

    Each closed channel leaves its producing convolution, the per-channel layers after it
    and the consuming convolution's input; a closed block keeps only its shortcut. In eval
    mode the result computes what the gated model computes (the gates then apply the same
    consensus). The model's mode and parameters' ``requires_grad`` are kept.

    A ``GateWarning`` says which groups are far from their target keep or not polarized
    (:func:`~ssprop_energy.pruning.gating.gate_warnings`): pruning them now keeps what their
    gates decide so far, not the target."""
    warn_gates(gate_states(model), stacklevel=2)
    return prune_with(copy.deepcopy(model), consensus(model))


def prune_with(model: nn.Module, masks: Masks) -> nn.Module:
    """Prune ``model`` in place by ``masks`` (see :func:`consensus`); returns it."""
    for name, module in list(model.named_modules()):
        if isinstance(module, GatedInput):
            keep = _channels(masks, module.chain[0], module.gate.units)
            for owner in module.chain:
                _replace(model, owner, _slice(_resolve(model, owner), keep, output=True))
            module.layer = _slice(module.layer, keep, output=False)
        elif isinstance(module, fx.GraphModule) and any(
            isinstance(m, BlockGate) for m in module.children()
        ):
            _prune_block(module, bool(_channels(masks, name, 1)[0]))
    for name, module in list(model.named_modules()):
        if isinstance(module, GatedInput):
            _set(model, name, module.layer)
    return model


def _channels(masks: Masks, name: str, units: int) -> torch.Tensor:
    keep = masks.get(name)
    if keep is None or keep.shape != (units,):
        raise ValueError(f"no mask of {units} units for gated layer {name!r}")
    return keep.bool()


def _resolve(model: nn.Module, name: str) -> nn.Module:
    module = model.get_submodule(name)
    return module.layer if isinstance(module, GatedInput) else module


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where ``name`` is (inside the gate wrapper when it is wrapped)."""
    current = model.get_submodule(name)
    if isinstance(current, GatedInput):
        current.layer = new
    else:
        _set(model, name, new)


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


M = TypeVar("M", bound=nn.Module)


def _copy(module: M) -> M:
    """A shallow copy of ``module`` with dictionaries of its own for parameters and buffers."""
    new = copy.copy(module)
    new.__dict__["_parameters"] = dict(module._parameters)
    new.__dict__["_buffers"] = dict(module._buffers)
    return new


def _slice(module: nn.Module, keep: torch.Tensor, output: bool) -> nn.Module:
    """A copy of a convolution or BatchNorm with only the ``keep`` channels (of its output,
    or of its input when ``output`` is False); a depthwise convolution loses both."""
    index = keep.nonzero().flatten().to(next(iter(module.parameters())).device)
    n = len(index)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        norm = _copy(module)
        for key in ("weight", "bias"):
            _take(norm, key, 0, index)
        for key in ("running_mean", "running_var"):
            buffer = norm._buffers.get(key)
            if buffer is not None:
                norm._buffers[key] = buffer.index_select(0, index).clone()
        norm.num_features = n
        return norm
    assert isinstance(module, nn.modules.conv._ConvNd)
    new = _copy(module)
    depthwise = module.groups > 1
    if output or depthwise:
        _take(new, "weight", 0, index)
        _take(new, "bias", 0, index)
        new.out_channels = n
    if depthwise:
        new.in_channels = new.groups = n
    elif not output:
        _take(new, "weight", 1, index)
        new.in_channels = n
    return new


def _take(module: nn.Module, key: str, dim: int, index: torch.Tensor) -> None:
    param = module._parameters.get(key)
    if param is None:
        return
    data = param.detach().index_select(dim, index).clone()
    module._parameters[key] = nn.Parameter(data, requires_grad=param.requires_grad)


def _prune_block(block: fx.GraphModule, kept: bool) -> None:
    """Drop a block's gate; a closed block's branch goes too (its sum becomes the shortcut)."""
    graph = block.graph
    gate = next(
        n
        for n in graph.nodes
        if n.op == "call_module" and isinstance(block.get_submodule(str(n.target)), BlockGate)
    )
    branch = gate.args[0]
    assert isinstance(branch, fx.Node)
    if kept:
        gate.replace_all_uses_with(branch)
        graph.erase_node(gate)
    else:
        parts = split_residual(block)
        assert parts is not None
        total, _, shortcut, _ = parts
        total.replace_all_uses_with(shortcut)
        graph.erase_node(total)
    graph.eliminate_dead_code()
    block.delete_all_unused_submodules()
    block.recompile()
