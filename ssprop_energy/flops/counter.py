"""``count_flops``: analytic forward and backward FLOPs per module, from shapes alone.

The model runs once on the ``meta`` device (parameters swapped for meta tensors with
``torch.func.functional_call``: no compute, no memory, the user's model untouched) while
module hooks record every module call's inputs and output, a dispatch mode the aten ops that
run, and a function mode the calls of ``F.scaled_dot_product_attention``. The counter only
dispatches, to the formulas of the registry (:mod:`.registry`, built-ins in :mod:`.builtin`):
a module whose type has a formula is counted whole by it, with each ssProp layer's ``keep``
(or a hypothetical keep for every convolution); inside any other module each op is counted
by its op formula, and an op without one is listed as skipped. A model the meta device
cannot run (data-dependent shapes, ``.item()``) is traced once on its own device instead,
and the report says so.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import UserError
from ..sparse import SSPropMixin
from ..sparse.selection import check_keep
from ..store import atomic_write_csv
from .builtin import FUNCTION_OPS
from .registry import (
    Call,
    FlopCost,
    Formula,
    evaluate,
    first_tensor,
    module_formula,
    needs_grad,
    op_formula,
)

CONVENTION = "2 FLOPs per multiply-accumulate (torch FlopCounterMode); fvcore counts 1"
COUNTS = ["forward", "grad_input", "grad_weight", "grad_bias"]
COLUMNS = [
    "module",
    "type",
    *COUNTS,
    "backward",
    "selection",
    "total",
    "params",
    "output_shape",
]
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
InputSpec = torch.Tensor | Sequence[torch.Tensor] | Sequence[int]
KeepOf = Callable[[nn.Module], float]


@dataclass
class FlopReport:
    """Per-module FLOPs of one training step (forward + backward) of a model.

    ``skipped`` lists the ops that ran with no formula, each under the module that ran it
    (``"block (functional cumsum)"``): they are not in the totals. ``traced_on`` is
    ``"meta"``, or the device the model had to run on once to record its shapes.
    """

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    convention: str = CONVENTION
    traced_on: str = "meta"

    @property
    def forward(self) -> int:
        return int(self.table["forward"].sum())

    @property
    def backward(self) -> int:
        return int(self.table["backward"].sum())

    @property
    def selection(self) -> int:
        """ssProp's channel scoring (|dy| and its per-channel sum), not part of backward."""
        return int(self.table["selection"].sum())

    @property
    def total(self) -> int:
        return int(self.table["total"].sum())

    def to_csv(self, path: Path | str) -> Path:
        return atomic_write_csv(path, self.table)

    def totals_row(self) -> pd.DataFrame:
        """The table's last row for display: ``total`` with the summed counts."""
        summed = [*COUNTS, "backward", "selection", "total"]
        row = {c: (int(self.table[c].sum()) if c in summed else "") for c in self.table.columns}
        return pd.DataFrame([{**row, "module": "total"}], columns=self.table.columns)

    def _repr_html_(self) -> str:
        """The per-layer table with a totals row, and the convention (for Jupyter)."""
        notes = [f"FLOPs of one training step; {self.convention}"]
        if self.traced_on != "meta":
            notes.append(f"shapes recorded by running the model on {self.traced_on}")
        if self.skipped:
            notes.append("not counted (no formula): " + ", ".join(self.skipped))
        shown = pd.concat([self.table, self.totals_row()], ignore_index=True)
        caption = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
        return caption + shown.to_html(index=False, na_rep="–")

    def __str__(self) -> str:
        lines = [self.table.to_string(index=False)]
        lines.append(
            f"total: forward {self.forward:,}, backward {self.backward:,}, "
            f"selection {self.selection:,}, total {self.total:,} FLOPs ({self.convention})"
        )
        if self.traced_on != "meta":
            lines.append(f"shapes recorded by running the model on {self.traced_on}")
        if self.skipped:
            lines.append("not counted (no formula): " + ", ".join(self.skipped))
        return "\n".join(lines)


def is_conv(table: pd.DataFrame) -> pd.Series:
    """Which rows of a ``count_flops`` table are convolutions: a convolution module (any
    subclass of torch's ``_ConvNd``: 1-3d, transposed, ssProp's) or ``F.conv*`` between
    layers (type ``convolution``)."""
    return table["type"].isin({*type_names(nn.modules.conv._ConvNd), "convolution"})


def type_names(*bases: type) -> set[str]:
    """The class names of ``bases`` and of all their subclasses defined so far."""
    names, todo = set(), list(bases)
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


@dataclass
class _Call:
    """One module invocation: its inputs and output, and the costs of the ops it ran itself.

    ``covered``: it runs inside a module with a formula, which counts it."""

    module: nn.Module
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    formula: Formula | None = None
    covered: bool = False
    output: Any = None
    ops: dict[str, tuple[FlopCost, str]] = field(default_factory=dict)  # type -> summed cost
    unknown_ops: list[str] = field(default_factory=list)

    @property
    def counts_own_ops(self) -> bool:
        return self.formula is None and not self.covered

    def add_op(self, costs: list[FlopCost], name: str, out: Any) -> None:
        for cost in costs:
            kind = cost.type or name
            old = self.ops.get(kind, (FlopCost(kind), ""))[0]
            self.ops[kind] = (old + cost, _shape(out))

    def add_unknown(self, op: str) -> None:
        if op not in self.unknown_ops:
            self.unknown_ops.append(op)


class _OpRecorder(TorchDispatchMode):
    """Charges each op to the innermost module call that counts its own ops."""

    def __init__(self, stack: list[_Call], top: _Call) -> None:
        super().__init__()
        self.stack, self.top = stack, top
        self.muted = 0  # > 0 inside a function already counted as a whole (attention)

    def owner(self) -> _Call | None:
        """The call the ops running now are charged to, or None (a formula counts them)."""
        owner = self.stack[-1] if self.stack else self.top
        return None if self.muted or not owner.counts_own_ops else owner

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        owner = self.owner()
        if owner is None:
            return out
        packet = func.overloadpacket
        formula = op_formula(packet)
        if formula is None:
            owner.add_unknown(packet.__name__)
        else:
            owner.add_op(evaluate(formula, Call(packet, args, kwargs, out)), packet.__name__, out)
        return out


class _FunctionRecorder(TorchFunctionMode):
    """Counts the functions of ``FUNCTION_OPS`` (``F.scaled_dot_product_attention``) by their
    op's formula, whatever the function decomposes into on the device it runs on."""

    def __init__(self, ops: _OpRecorder) -> None:
        super().__init__()
        self.ops = ops

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        op = FUNCTION_OPS.get(func)
        formula = None if op is None else op_formula(op)
        owner = self.ops.owner()
        if formula is None or owner is None:
            return func(*args, **kwargs)
        self.ops.muted += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self.ops.muted -= 1
        costs = evaluate(formula, Call(op, tuple(args), kwargs, out), needs_grad(out))
        owner.add_op(costs, op.__name__, out)
        return out


def _to_tensors(model: nn.Module, inputs: InputSpec) -> list[torch.Tensor]:
    """The inputs as meta tensors (a shape becomes a tensor of the model's float dtype)."""
    if isinstance(inputs, torch.Tensor):
        tensors = [inputs]
    elif len(inputs) and all(isinstance(v, int) for v in inputs):
        if any(int(v) < 1 for v in inputs):  # type: ignore[arg-type]
            raise UserError(f"inputs: every size of a shape must be >= 1, got {tuple(inputs)}")
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        shape = tuple(int(v) for v in inputs)  # type: ignore[arg-type]
        tensors = [torch.empty(shape, dtype=dtype or torch.float32, device="meta")]
    elif len(inputs) and all(isinstance(v, torch.Tensor) for v in inputs):
        tensors = list(inputs)  # type: ignore[arg-type]
    else:
        raise UserError(f"inputs: expected a tensor, tensors or a shape, got {inputs!r}")
    return [t.detach().to("meta") for t in tensors]


def _shape(value: Any) -> str:
    first = first_tensor(value)
    return "" if first is None else "x".join(map(str, first.shape))


def count_flops(
    model: nn.Module,
    inputs: InputSpec,
    *,
    keep: float | None = None,
    input_requires_grad: bool = False,
) -> FlopReport:
    """Analytic FLOPs of one forward and backward pass of ``model`` on ``inputs``.

    ``inputs``: a tensor, a tuple of tensors, or a shape such as ``(1, 3, 32, 32)``.
    ``keep=None`` uses each ssProp layer's own keep (plain layers dense); a float applies
    that keep to every Conv1d/2d/3d, plain or ssProp ("what would ssProp save here?");
    converted ``SSPropLinear`` layers keep their own. The first layer has no grad_input
    unless ``input_requires_grad``. The model, its keep, mode and hooks are left as they were.
    """
    if keep is None:
        return _count(model, inputs, _own_keep, input_requires_grad)
    value = check_keep(keep)

    def keep_of(m: nn.Module) -> float:
        return value if isinstance(m, CONVS) else _own_keep(m)

    return _count(model, inputs, keep_of, input_requires_grad)


def _own_keep(module: nn.Module) -> float:
    return module.keep if isinstance(module, SSPropMixin) else 1.0


def _count(
    model: nn.Module, inputs: InputSpec, keep_of: KeepOf, input_requires_grad: bool = False
) -> FlopReport:
    """``count_flops`` with the keep of every layer given by ``keep_of``."""
    tensors = _to_tensors(model, inputs)
    try:
        calls, top = _trace(model, tensors, input_requires_grad, on_meta=True)
        traced_on = "meta"
    except Exception:  # the meta device cannot run every model: trace it on its own device
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        try:
            calls, top = _trace(model, tensors, input_requires_grad, on_meta=False)
        except Exception as exc:
            shapes = ", ".join(_shape(t) for t in tensors)
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            raise UserError(f"inputs: shape {shapes} does not fit the model ({first})") from None
        traced_on = str(device)
    return _report(calls, top, keep_of, traced_on)


def _trace(
    model: nn.Module, tensors: list[torch.Tensor], input_requires_grad: bool, on_meta: bool
) -> tuple[list[_Call], _Call]:
    """Run ``model`` once in eval mode with hooks and recorders; return the calls in order."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = [
        (t if on_meta else torch.zeros(t.shape, dtype=t.dtype, device=device)).requires_grad_(
            input_requires_grad and t.is_floating_point()
        )
        for t in tensors
    ]
    calls: list[_Call] = []
    stack: list[_Call] = []
    names = {m: n for n, m in model.named_modules()}
    formulas = {m: module_formula(m) for m in model.modules()}
    top = _Call(model, "(functional)", (), {})

    def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        covered = not (stack[-1] if stack else top).counts_own_ops
        name = names.get(module, "?")
        stack.append(_Call(module, name, args, dict(kwargs), formulas.get(module), covered))

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        call = stack.pop()
        call.output = output
        if not call.covered:
            calls.append(call)

    handles = [
        h
        for m in model.modules()
        for h in (
            m.register_forward_pre_hook(pre, with_kwargs=True),
            m.register_forward_hook(post),
        )
    ]
    was_training = {m: m.training for m in model.modules()}
    ops = _OpRecorder(stack, top)
    try:
        model.eval()
        with torch.enable_grad(), _FunctionRecorder(ops), ops:
            if on_meta:
                state = {
                    name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
                    for name, t in [*model.named_parameters(), *model.named_buffers()]
                }
                torch.func.functional_call(model, state, tuple(inputs))
            else:
                model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training.items():
            m.train(flag)
    return calls, top


def _report(calls: list[_Call], top: _Call, keep_of: KeepOf, traced_on: str) -> FlopReport:
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for call in [*calls, top]:
        m = call.module
        label = call.name or type(m).__name__
        base = {"module": label, "type": "", "params": 0, "output_shape": _shape(call.output)}
        if call.formula is not None:
            counted = Call(m, call.args, call.kwargs, call.output, keep_of(m))
            backward = needs_grad(first_tensor(call.output))
            for i, cost in enumerate(evaluate(call.formula, counted, backward)):
                own: dict[str, str | int] = {"type": cost.type or type(m).__name__}
                if i == 0:
                    own["params"] = sum(p.numel() for p in m.parameters(recurse=False))
                rows.append({**base, **_counts(cost), **own})
        skipped.extend(f"{label} (functional {op})" for op in call.unknown_ops)
        for cost, shape in call.ops.values():
            rows.append({**base, **_counts(cost), "type": cost.type, "output_shape": shape})
    table = pd.DataFrame(rows, columns=COLUMNS)
    counts = [*COUNTS, "selection"]
    table[counts] = table[counts].fillna(0).astype("int64")
    table["backward"] = table["grad_input"] + table["grad_weight"] + table["grad_bias"]
    table["total"] = table["forward"] + table["backward"] + table["selection"]
    table["params"] = table["params"].fillna(0).astype("int64")
    return FlopReport(table=table, skipped=skipped, traced_on=traced_on)


def _counts(cost: FlopCost) -> dict[str, int]:
    return {c: getattr(cost, c) for c in [*COUNTS, "selection"]}
