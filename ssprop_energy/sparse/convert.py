"""Swap ordinary layers of any model for ssProp layers that share the same parameters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from torch import nn

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
    itself is converted).
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
        return _sparse_twin(model, keep, selection, sparse_input_grad)
    targets = [
        (n, m) for n, m in model.named_modules(remove_duplicate=False) if n and convertible(n, m)
    ]
    twins: dict[int, nn.Module] = {}  # a module used twice gets one twin
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if id(module) not in twins:
            twins[id(module)] = _sparse_twin(module, keep, selection, sparse_input_grad)
        setattr(parent, child, twins[id(module)])
    return model


def sparse_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every ssProp layer in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SSPropMixin)]


def set_keep(model: nn.Module, keep: float) -> int:
    """Set ``keep`` on every ssProp layer of ``model``; returns how many layers were set."""
    keep = check_keep(keep)
    layers = sparse_layers(model)
    for _, module in layers:
        module.set_keep(keep)  # type: ignore[operator]
    return len(layers)
