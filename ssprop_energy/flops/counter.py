"""``count_flops``: analytic forward and backward FLOPs per module, from shapes alone.

The model runs once on the ``meta`` device (parameters swapped for meta tensors with
``torch.func.functional_call``: no compute, no memory, the user's model untouched) while
module hooks record every layer's input and output shapes and whether they need a gradient.
A dispatch mode records the ops a model runs between its layers (residual adds,
``F.relu``, ``torch.cat``, matmuls: see :mod:`.ops`) and a function mode the calls of
``F.scaled_dot_product_attention``. The formulas of :mod:`.formulas` then turn shapes into
FLOPs, with each ssProp layer's ``keep`` (or a hypothetical keep for every convolution).
A model the meta device cannot run (data-dependent shapes, ``.item()``) is traced once on
its own device instead, and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import UserError
from ..sparse import SSPropMixin, kept_channels
from ..sparse.selection import check_keep
from . import formulas as fm
from .ops import FREE_OPS, OP_FORMULAS, OpCost, needs_grad

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
NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
FORMULA_TYPES = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.Embedding,
    nn.MultiheadAttention,
    *NORMS,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.Upsample,
)
POOL_DIMS = {
    1: (nn.MaxPool1d, nn.AvgPool1d),
    2: (nn.MaxPool2d, nn.AvgPool2d),
    3: (nn.MaxPool3d, nn.AvgPool3d),
}
InputSpec = torch.Tensor | Sequence[torch.Tensor] | Sequence[int]
KeepOf = Callable[[nn.Module], float]


@dataclass
class FlopReport:
    """Per-module FLOPs of one training step (forward + backward) of a model.

    ``skipped`` lists the layers (and functional ops) that computed something no formula
    covers: they are not in the totals. ``traced_on`` is ``"meta"``, or the device the model
    had to run on once to record its shapes.
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
        from ..store import atomic_write_csv

        return atomic_write_csv(path, self.table)

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


@dataclass
class _Call:
    """One module invocation: its inputs and output, and the ops it ran itself."""

    module: nn.Module
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any = None
    ops: dict[str, tuple[OpCost, str]] = field(default_factory=dict)  # type -> summed cost
    unknown_ops: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> list[torch.Tensor]:
        return [a for a in self.args if isinstance(a, torch.Tensor)]

    def add_op(self, cost: OpCost, out: Any) -> None:
        old = self.ops.get(cost.type, (OpCost(cost.type, 0), ""))[0]
        summed = OpCost(
            cost.type,
            old.forward + cost.forward,
            old.grad_input + cost.grad_input,
            old.grad_weight + cost.grad_weight,
            old.grad_bias + cost.grad_bias,
        )
        self.ops[cost.type] = (summed, _shape(out))

    def add_unknown(self, op: str) -> None:
        if op not in self.unknown_ops:
            self.unknown_ops.append(op)


def _has_formula(module: nn.Module) -> bool:
    return isinstance(module, FORMULA_TYPES) or type(module).__name__ in fm.ACTIVATION_COST


def _unknown_layer(module: nn.Module, model: nn.Module) -> bool:
    """A leaf module without a formula (not the model itself: its own ops are glue)."""
    return (
        module is not model and next(module.children(), None) is None and not _has_formula(module)
    )


class _OpRecorder(TorchDispatchMode):
    """Charges the ops a module runs itself (not inside a layer with a formula) to it."""

    def __init__(self, stack: list[_Call], top: _Call) -> None:
        super().__init__()
        self.stack, self.top = stack, top
        self.muted = 0  # > 0 inside a call already counted as a whole (attention)

    def owner(self) -> _Call | None:
        """The innermost call whose own ops are counted here, or None (a layer counts itself)."""
        owner = self.stack[-1] if self.stack else self.top
        return None if self.muted or _has_formula(owner.module) else owner

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        owner = self.owner()
        packet = func.overloadpacket
        if owner is None or packet in FREE_OPS:
            return out
        formula = OP_FORMULAS.get(packet)
        if formula is None or _unknown_layer(owner.module, self.top.module):
            owner.add_unknown(packet.__name__)  # a layer without formula is listed whole
        else:
            owner.add_op(formula(args, out), out)
        return out


class _AttentionRecorder(TorchFunctionMode):
    """Counts ``F.scaled_dot_product_attention`` as torch's fused kernels do, whatever path
    the meta device takes for it (the math path there; a fused kernel on CPU and GPU)."""

    def __init__(self, ops: _OpRecorder) -> None:
        super().__init__()
        self.ops = ops

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        owner = self.ops.owner()
        if func is not F.scaled_dot_product_attention or owner is None:
            return func(*args, **kwargs)
        q, k, v = _qkv(args, kwargs)
        dims = (q.shape[:-2].numel(), q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1])
        self.ops.muted += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self.ops.muted -= 1
        if _unknown_layer(owner.module, self.ops.top.module):
            owner.add_unknown("scaled_dot_product_attention")
            return out
        grad = fm.sdpa_backward(*dims) if out.requires_grad else 0
        owner.add_op(OpCost("attention", fm.sdpa_forward(*dims), grad), out)
        return out


def _qkv(args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any]:
    """query, key and value of an attention call, given by position or by name."""
    names = ("query", "key", "value")
    return [args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)]


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
    if isinstance(value, torch.Tensor):
        return "x".join(map(str, value.shape))
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        return _shape(value[0])
    return ""


def _first(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _conv_row(call: _Call, keep: float) -> dict[str, int]:
    m: Any = call.module
    x, y = call.inputs[0], _first(call.output)
    assert y is not None
    batched = x.dim() == m.weight.dim()
    n = x.shape[0] if batched else 1
    kernel = tuple(m.kernel_size)
    if m.transposed:
        in_spatial = tuple(x.shape[-len(kernel) :])
        fwd = fm.conv_transpose_forward(
            n, m.in_channels, m.out_channels, m.groups, kernel, in_spatial
        )
        gb = fm.conv_grad_bias(n, m.out_channels, tuple(y.shape[-len(kernel) :]))
        return {"forward": fwd, "grad_input": fwd, "grad_weight": fwd, "grad_bias": gb}
    out_spatial = tuple(y.shape[-len(kernel) :])
    args = (n, m.in_channels)
    fwd = fm.conv_forward(*args, m.out_channels, m.groups, kernel, out_spatial)
    k, selection, sparse_input = m.out_channels, 0, True
    if keep < 1.0:
        k = kept_channels(keep, m.out_channels, m.groups)
        selection = fm.channel_scoring(y.numel(), getattr(m, "selection", "topk"))
        sparse_input = getattr(m, "sparse_input_grad", True)
    gi_k = k if sparse_input else m.out_channels
    return {
        "forward": fwd,
        "grad_input": fm.conv_grad_input(*args, gi_k, m.groups, kernel, out_spatial),
        "grad_weight": fm.conv_grad_weight(*args, k, m.groups, kernel, out_spatial),
        "grad_bias": fm.conv_grad_bias(n, k, out_spatial),
        "selection": selection,
    }


def _linear_row(call: _Call, keep: float) -> dict[str, int]:
    m: Any = call.module
    x = call.inputs[0]
    rows = x.numel() // m.in_features
    k, selection, sparse_input = m.out_features, 0, True
    if keep < 1.0:
        k = kept_channels(keep, m.out_features)
        selection = fm.channel_scoring(rows * m.out_features, getattr(m, "selection", "topk"))
        sparse_input = getattr(m, "sparse_input_grad", True)
    return {
        "forward": fm.linear_forward(rows, m.in_features, m.out_features),
        "grad_input": fm.linear_grad(rows, m.in_features, k if sparse_input else m.out_features),
        "grad_weight": fm.linear_grad(rows, m.in_features, k),
        "grad_bias": fm.linear_grad_bias(rows, k),
        "selection": selection,
    }


def _mha_rows(call: _Call) -> list[dict[str, Any]]:
    """The four projections (matmuls) and the attention itself (its own row).

    ``need_weights=True`` (the default) makes torch run the unfused math path, whose
    backward is four matmuls; ``need_weights=False`` runs a fused kernel (five)."""
    m: Any = call.module
    q, k, v = _qkv(call.args, call.kwargs)
    seq = 1 if m.batch_first else 0
    batch = q.shape[1 - seq] if q.dim() == 3 else 1
    lq, lk = q.shape[seq if q.dim() == 3 else 0], k.shape[seq if k.dim() == 3 else 0]
    e, head = m.embed_dim, m.embed_dim // m.num_heads
    projections = [(q, batch * lq, e), (k, batch * lk, m.kdim), (v, batch * lk, m.vdim)]
    trains = [p.requires_grad for p in m.parameters()]
    fwd = sum(fm.linear_forward(rows, d, e) for _, rows, d in projections)
    fwd += fm.linear_forward(batch * lq, e, e)
    grad_in = sum(fm.linear_forward(r, d, e) for t, r, d in projections if needs_grad(t))
    grad_in += fm.linear_forward(batch * lq, e, e)  # out_proj's input is the attention output
    grad_w = fwd if any(trains) else 0
    grad_b = 0
    if m.in_proj_bias is not None and m.in_proj_bias.requires_grad:
        grad_b += batch * (lq + 2 * lk) * e
    if m.out_proj.bias is not None and m.out_proj.bias.requires_grad:
        grad_b += batch * lq * e
    dims = (batch * m.num_heads, lq, lk, head, head)
    fused = not call.kwargs.get("need_weights", True)
    backward = (fm.sdpa_backward if fused else fm.sdpa_math_backward)(*dims)
    base = {"forward": fwd, "grad_input": grad_in, "grad_weight": grad_w, "grad_bias": grad_b}
    attention = {
        "type": "attention" if fused else "attention_math",
        "params": 0,
        "forward": fm.sdpa_forward(*dims),
        "grad_input": backward,
    }
    return [base, attention]


def _elementwise_row(call: _Call) -> dict[str, int]:
    m = call.module
    x, y = call.inputs[0], _first(call.output)
    assert y is not None
    name = type(m).__name__
    if isinstance(m, nn.Embedding):
        forward, grad_weight = fm.embedding(y.numel())
        return {"forward": forward, "grad_input": 0, "grad_weight": grad_weight, "grad_bias": 0}
    if isinstance(m, NORMS):
        affine = bool(getattr(m, "affine", getattr(m, "elementwise_affine", False)))
        gw, gb = fm.norm_grad_affine(x.numel()) if affine else (0, 0)
        return {
            "forward": fm.norm_forward(x.numel(), affine),
            "grad_input": fm.norm_grad_input(x.numel()),
            "grad_weight": gw,
            "grad_bias": gb,
        }
    if name in fm.ACTIVATION_COST:
        fwd, gi = fm.activation(name, x.numel())
    elif isinstance(m, nn.Upsample):
        fwd, gi = fm.upsample(y.numel(), m.mode)
    else:  # pooling
        window = max(1, x.numel() // max(1, y.numel()))
        if isinstance(m, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd):
            size = m.kernel_size
            window = size ** _pool_dims(m) if isinstance(size, int) else prod(size)
        fwd, gi = (fm.max_pool if "Max" in name else fm.avg_pool)(y.numel(), window)
    return {"forward": fwd, "grad_input": gi, "grad_weight": 0, "grad_bias": 0}


def _pool_dims(m: nn.Module) -> int:
    """Spatial dimensions of a max or average pooling layer (its kernel may be one int)."""
    for dims, types in POOL_DIMS.items():
        if isinstance(m, types):
            return dims
    raise TypeError(f"not a pooling layer: {type(m).__name__}")


def _layer_rows(call: _Call, keep: float) -> list[dict[str, Any]]:
    """The rows of a layer with a formula; gradients nobody asks for are 0."""
    m = call.module
    if isinstance(m, nn.MultiheadAttention):
        rows = _mha_rows(call)
    elif isinstance(m, nn.modules.conv._ConvNd):
        rows = [_conv_row(call, keep)]
    elif isinstance(m, nn.Linear):
        rows = [_linear_row(call, keep)]
    else:
        rows = [_elementwise_row(call)]
    if not needs_grad(_first(call.output)):
        return [{**row, "grad_input": 0, "grad_weight": 0, "grad_bias": 0, "selection": 0}
                for row in rows]  # fmt: skip
    if isinstance(m, nn.MultiheadAttention):
        return rows
    counts = rows[0]
    if not needs_grad(call.inputs[0]):
        counts["grad_input"] = 0
    if not needs_grad(getattr(m, "weight", None)):
        counts["grad_weight"] = 0
    if not needs_grad(getattr(m, "bias", None)):
        counts["grad_bias"] = 0
    return rows


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
    top = _Call(model, "(functional)", (), {})

    def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        stack.append(_Call(module, names.get(module, "?"), args, dict(kwargs)))

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        call = stack.pop()
        call.output = output
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
        with torch.enable_grad(), _AttentionRecorder(ops), ops:
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
        base = {
            "module": label,
            "type": type(m).__name__,
            "params": sum(p.numel() for p in m.parameters(recurse=False)),
            "output_shape": _shape(call.output),
        }
        if call is top:
            base.update(type="", params=0)
        elif _has_formula(m):
            layer_rows = _layer_rows(call, keep_of(m))
            rows.append({**base, **layer_rows[0]})
            rows.extend({**base, **extra} for extra in layer_rows[1:])
        elif call.unknown_ops and _unknown_layer(m, top.module):
            skipped.append(f"{label} ({type(m).__name__}: {', '.join(call.unknown_ops)})")
        elif call.unknown_ops:
            skipped.extend(f"{label} (functional {op})" for op in call.unknown_ops)
        for cost, shape in call.ops.values():
            rows.append(
                {
                    **base,
                    "type": cost.type,
                    "params": 0,
                    "output_shape": shape,
                    "forward": cost.forward,
                    "grad_input": cost.grad_input,
                    "grad_weight": cost.grad_weight,
                    "grad_bias": cost.grad_bias,
                }
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    counts = [*COUNTS, "selection"]
    table[counts] = table[counts].fillna(0).astype("int64")
    table["backward"] = table["grad_input"] + table["grad_weight"] + table["grad_bias"]
    table["total"] = table["forward"] + table["backward"] + table["selection"]
    table["params"] = table["params"].fillna(0).astype("int64")
    return FlopReport(table=table, skipped=skipped, traced_on=traced_on)
