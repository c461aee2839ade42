"""The FLOP registry: one formula per module type or aten op, registered by decorator.

A formula is a small pure function of one :class:`Call` (the module or op, its arguments
and output as shape-carrying meta tensors, the keep it runs at) that returns the call's
:class:`FlopCost` (or several, one table row each). ``count_flops`` only dispatches: a
module whose type (or a base class of it) has a formula is counted by it as a whole, and
its backward counts are zeroed when its output needs no gradient; inside any other module
every op that runs is looked up here (an op formula checks its operands' ``requires_grad``:
below autograd an op's output does not carry it), and an op with no formula is skipped.

    from ssprop_energy.flops import FlopCost, register_flop_formula

    @register_flop_formula(MyGate)
    def my_gate(call):
        n = call.out.numel()
        return FlopCost(forward=3 * n, grad_input=2 * n if call.input.requires_grad else 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import torch
from torch import nn
from torch._ops import OpOverloadPacket

Target = type[nn.Module] | OpOverloadPacket
TargetSpec = type[nn.Module] | OpOverloadPacket | str
BACKWARD = ("grad_input", "grad_weight", "grad_bias", "selection")


@dataclass(frozen=True)
class FlopCost:
    """FLOPs of one call. ``grad_input`` is the gradient of the data input(s), ``grad_weight``
    and ``grad_bias`` of the parameters (or of a matmul's right operand), ``selection`` ssProp's
    channel scoring. ``type`` names the table row: empty means the module's class name (or,
    for an op, the op's name)."""

    type: str = ""
    forward: int = 0
    grad_input: int = 0
    grad_weight: int = 0
    grad_bias: int = 0
    selection: int = 0

    def __add__(self, other: FlopCost) -> FlopCost:
        sums = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)[1:]}
        return FlopCost(self.type, **sums)


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in ``value`` (a tensor, or a tuple, list or dict holding tensors)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, tuple | list):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def needs_grad(t: Any) -> bool:
    """Whether ``t`` is a tensor that needs a gradient."""
    return isinstance(t, torch.Tensor) and t.requires_grad


@dataclass(frozen=True)
class Call:
    """One call of a module or op as the counter saw it.

    ``target`` is the module (for a module formula) or the aten op overload packet. The
    tensors are usually on the meta device: shapes, dtypes and ``requires_grad``, no values.
    ``keep`` is the fraction of output channels whose gradient is computed (1.0 for ops).
    """

    target: nn.Module | OpOverloadPacket
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    keep: float = 1.0

    @property
    def input(self) -> torch.Tensor:
        """The first tensor argument (positional, else keyword)."""
        found = first_tensor(self.args)
        if found is None:
            found = first_tensor(self.kwargs)
        if found is None:
            raise ValueError(f"{self.target!r} was called without a tensor argument")
        return found

    @property
    def out(self) -> torch.Tensor:
        """The first tensor of the output."""
        found = first_tensor(self.output)
        if found is None:
            raise ValueError(f"{self.target!r} returned no tensor")
        return found


Formula = Callable[[Call], FlopCost | Sequence[FlopCost]]
F = TypeVar("F", bound=Formula)
_FORMULAS: dict[Target, Formula] = {}


def _resolve(spec: TargetSpec) -> Target:
    """A module class or op packet; a string names an aten op (``"relu_"``)."""
    if isinstance(spec, str):
        op = getattr(torch.ops.aten, spec, None)
        if not isinstance(op, OpOverloadPacket):
            raise ValueError(f"register_flop_formula: there is no aten op named {spec!r}")
        return op
    if isinstance(spec, OpOverloadPacket) or (
        isinstance(spec, type) and issubclass(spec, nn.Module) and spec is not nn.Module
    ):
        return spec
    raise ValueError(
        "register_flop_formula: expected an nn.Module subclass, an op such as "
        f"torch.ops.aten.mm or an aten op name, got {spec!r}"
    )


def _label(target: Target) -> str:
    if isinstance(target, type):
        return f"{target.__module__}.{target.__qualname__}"
    return str(target)


def register_flop_formula(*targets: TargetSpec) -> Callable[[F], F]:
    """Decorator: ``formula`` counts every call of these module types or aten ops.

    A module type covers its subclasses too (the most specific registration wins) and counts
    everything that runs inside the module: its submodules and ops are not counted again.
    Registering a target that already has a formula (a built-in one included) or a name that
    is no aten op raises ``ValueError``; ``unregister_flop_formula`` removes one.
    """
    if not targets:
        raise ValueError("register_flop_formula: name at least one module type or op")
    resolved = [_resolve(t) for t in targets]

    def register(formula: F) -> F:
        for target in resolved:
            if target in _FORMULAS:
                raise ValueError(
                    f"register_flop_formula: {_label(target)} already has a FLOP formula "
                    f"({_FORMULAS[target].__qualname__}); unregister_flop_formula removes it"
                )
        for target in resolved:
            _FORMULAS[target] = formula
        return formula

    return register


def unregister_flop_formula(*targets: TargetSpec) -> None:
    """Remove the formulas of these module types or ops (``ValueError`` if one has none)."""
    resolved = [_resolve(t) for t in targets]
    for target in resolved:
        if target not in _FORMULAS:
            raise ValueError(f"unregister_flop_formula: {_label(target)} has no FLOP formula")
    for target in resolved:
        del _FORMULAS[target]


def module_formula(module: nn.Module) -> Formula | None:
    """The formula of ``module``'s type or of its nearest registered base class."""
    for cls in type(module).__mro__:
        formula = _FORMULAS.get(cls)
        if formula is not None:
            return formula
    return None


def op_formula(op: OpOverloadPacket) -> Formula | None:
    return _FORMULAS.get(op)


def evaluate(formula: Formula, call: Call, backward: bool = True) -> list[FlopCost]:
    """The costs of ``call`` as a list; ``backward=False`` zeroes every backward count."""
    costs = formula(call)
    listed = [costs] if isinstance(costs, FlopCost) else list(costs)
    if backward:
        return listed
    zeros: dict[str, Any] = dict.fromkeys(BACKWARD, 0)
    return [replace(c, **zeros) for c in listed]
