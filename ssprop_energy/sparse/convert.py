"""Swap ordinary layers of any model for ssProp layers that share the same parameters."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .layers import SPARSE_LAYERS, SSPropMixin
from .selection import check_keep, check_selection


def _sparse_twin(
    module: nn.Module, keep: float, selection: str, sparse_input_grad: bool
) -> nn.Module:
    """A new ssProp module that shares ``module``'s parameters, buffers and hooks."""
    cls = SPARSE_LAYERS[type(module)]
    twin = cls.__new__(cls)
    twin.__dict__.update(module.__dict__)
    for attr in ("_parameters", "_buffers", "_modules"):
        twin.__dict__[attr] = dict(module.__dict__[attr])
    assert isinstance(twin, SSPropMixin)
    twin._init_sparse(keep, selection, sparse_input_grad)
    return twin


class _BypassCheck:
    """Warns once if converted layers are used only through their weights.

    A model may call ``F.linear(x, layer.weight)`` instead of ``layer(x)`` (torchvision's
    Swin attention does): the ssProp forward never runs and the gradient stays dense. At the
    end of the first backward pass that reaches a converted layer's weight, this names the
    converted layers whose weight got a gradient although their forward never ran, then
    removes its hooks.
    """

    def __init__(self, twins: dict[str, nn.Module]) -> None:
        self.names = {id(m): name for name, m in twins.items()}
        self.ran: set[int] = set()
        self.bypassed: list[str] = []
        self.queued = False
        self.handles: list[RemovableHandle] = []
        for twin in twins.values():
            self.handles.append(twin.register_forward_pre_hook(self.forward_ran))
            weight = twin.weight
            if isinstance(weight, torch.Tensor) and weight.requires_grad:
                self.handles.append(weight.register_hook(partial(self.weight_grad, twin)))

    def forward_ran(self, module: nn.Module, args: Any) -> None:
        self.ran.add(id(module))

    def weight_grad(self, twin: nn.Module, grad: torch.Tensor) -> None:
        if id(twin) not in self.ran:
            self.bypassed.append(self.names[id(twin)])
        if not self.queued:  # the engine runs it once this backward pass is over
            self.queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self.report)

    def report(self) -> None:
        for handle in self.handles:
            handle.remove()
        if self.bypassed:
            names = ", ".join(sorted(set(self.bypassed)))
            warnings.warn(
                f"convert_model: the converted layers {names} got a weight gradient but their "
                "forward never ran (the model uses their weights directly, e.g. F.linear(x, "
                "layer.weight)): their gradients are dense, ssProp does not apply to them",
                stacklevel=1,
            )


def convert_model(
    model: nn.Module,
    keep: float = 1.0,
    selection: str = "topk",
    layers: Sequence[type[nn.Module]] = (nn.Conv2d,),
    skip: Iterable[str] = (),
    *,
    sparse_input_grad: bool = True,
) -> nn.Module:
    """Replace, in place, every module whose exact type is one of ``layers`` by its ssProp twin.

    Supported types are ``nn.Conv1d``, ``nn.Conv2d``, ``nn.Conv3d`` and ``nn.Linear`` (exact
    types: a user subclass keeps its own forward and is left alone). ``skip`` takes qualified
    module names or glob patterns (``"conv1"``, ``"layer1.*"``). Parameters are shared, so
    forward outputs are bit-identical. Returns the model (a new object only when ``model``
    itself is converted). A converted layer that the model only uses through its weights
    (``F.linear(x, layer.weight)``) keeps a dense gradient: the first backward pass warns,
    naming such layers.
    """
    keep = check_keep(keep)
    selection = check_selection(selection)
    for cls in layers:
        if cls not in SPARSE_LAYERS:
            names = ", ".join(c.__name__ for c in SPARSE_LAYERS)
            raise ValueError(f"layers: {cls!r} has no ssProp twin (supported: {names})")
    wanted = tuple(layers)
    patterns = list(skip)

    def convertible(name: str, module: nn.Module) -> bool:
        return type(module) in wanted and not any(fnmatchcase(name, p) for p in patterns)

    if convertible("", model):
        twin = _sparse_twin(model, keep, selection, sparse_input_grad)
        _BypassCheck({type(model).__name__: twin})
        return twin
    targets = [
        (n, m) for n, m in model.named_modules(remove_duplicate=False) if n and convertible(n, m)
    ]
    twins: dict[int, nn.Module] = {}  # a module used twice gets one twin
    named: dict[str, nn.Module] = {}
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if id(module) not in twins:
            twins[id(module)] = named[name] = _sparse_twin(
                module, keep, selection, sparse_input_grad
            )
        setattr(parent, child, twins[id(module)])
    if named:
        _BypassCheck(named)
    return model


def sparse_layers(model: nn.Module) -> list[tuple[str, SSPropMixin]]:
    """``(name, module)`` of every ssProp layer in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SSPropMixin)]


def set_keep(model: nn.Module, keep: float) -> int:
    """Set ``keep`` on every ssProp layer of ``model``; returns how many layers were set."""
    keep = check_keep(keep)
    layers = sparse_layers(model)
    for _, module in layers:
        module.set_keep(keep)
    return len(layers)
