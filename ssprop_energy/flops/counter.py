"""``count_flops``: analytic forward and backward FLOPs per module, from shapes alone.

The model runs once on the ``meta`` device (parameters swapped for meta tensors with
``torch.func.functional_call``: no compute, no memory, the user's model untouched) while
module hooks record every layer's input and output shapes and whether its input needs a
gradient; a dispatch mode records the residual additions and functional attention calls
made between modules. The formulas of :mod:`.formulas` then turn shapes into FLOPs, with
each ssProp layer's ``keep`` (or a hypothetical keep for every convolution).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import UserError
from ..sparse import SSPropMixin, kept_channels
from ..sparse.selection import check_keep
from . import formulas as fm

CONVENTION = "2 FLOPs per multiply-accumulate (torch FlopCounterMode); fvcore counts 1"
COLUMNS = [
    "module",
    "type",
    "forward",
    "grad_input",
    "grad_weight",
    "grad_bias",
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
FREE = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Flatten,
    nn.Unflatten,
    nn.Sequential,
    nn.ModuleList,
    nn.ModuleDict,
)
"""Modules that compute nothing (or only contain other modules)."""

FORMULA_TYPES = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.MultiheadAttention,
    *NORMS,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.Upsample,
)
InputSpec = torch.Tensor | Sequence[torch.Tensor] | Sequence[int]


@dataclass
class FlopReport:
    """Per-module FLOPs of one training step (forward + backward) of a model."""

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    convention: str = CONVENTION

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
        from ..harness.store import atomic_write_csv

        return atomic_write_csv(path, self.table)

    def __str__(self) -> str:
        lines = [self.table.to_string(index=False)]
        lines.append(
            f"total: forward {self.forward:,}, backward {self.backward:,}, "
            f"selection {self.selection:,}, total {self.total:,} FLOPs ({self.convention})"
        )
        if self.skipped:
            lines.append("not counted (no formula): " + ", ".join(self.skipped))
        return "\n".join(lines)


@dataclass
class _Call:
    module: nn.Module
    name: str
    inputs: list[torch.Tensor]
    output: Any
    extra: list[tuple[str, int, int]] = field(default_factory=list)  # functional ops inside


def _to_tensors(model: nn.Module, inputs: InputSpec) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        tensors = [inputs]
    elif len(inputs) and all(isinstance(v, int) for v in inputs):
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        tensors = [torch.empty(tuple(inputs), dtype=dtype or torch.float32)]  # type: ignore[arg-type]
    elif all(isinstance(v, torch.Tensor) for v in inputs):
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


def _first(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else value[0]


class _Recorder(TorchDispatchMode):
    """Records residual additions and functional attention, charged to the module around."""

    def __init__(self, stack: list[_Call]) -> None:
        super().__init__()
        self.stack = stack
        self.top_level: list[tuple[str, int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        owner = self.stack[-1] if self.stack else None
        if owner is not None and _has_formula(owner.module):
            return out
        record = owner.extra if owner is not None else self.top_level
        packet = func.overloadpacket
        if packet in (torch.ops.aten.add, torch.ops.aten.add_) and len(args) >= 2:
            a, b = args[0], args[1]
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape:
                record.append(("add", fm.elementwise_add(a.numel()), 0))
        elif "scaled_dot_product" in packet.__name__ and "backward" not in packet.__name__:
            q, k, v = args[0], args[1], args[2]
            dims = (q.shape[:-2].numel(), q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1])
            record.append(("attention", fm.sdpa_forward(*dims), fm.sdpa_backward(*dims)))
        return out


def _has_formula(module: nn.Module) -> bool:
    return isinstance(module, FORMULA_TYPES) or type(module).__name__ in fm.ACTIVATION_COST


def _needs_grad(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


def _conv_row(call: _Call, keep: float | None) -> dict[str, int]:
    m: Any = call.module
    x, y = call.inputs[0], _first(call.output)
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
    layer_keep = keep if keep is not None else getattr(m, "keep", 1.0)
    k = m.out_channels
    selection = 0
    sparse_input = getattr(m, "sparse_input_grad", True)
    if layer_keep < 1.0 and torch.is_grad_enabled():
        k = kept_channels(layer_keep, m.out_channels, m.groups)
        selection = 2 * y.numel()
    gi_k = k if sparse_input else m.out_channels
    return {
        "forward": fwd,
        "grad_input": fm.conv_grad_input(*args, gi_k, m.groups, kernel, out_spatial),
        "grad_weight": fm.conv_grad_weight(*args, k, m.groups, kernel, out_spatial),
        "grad_bias": fm.conv_grad_bias(n, k, out_spatial),
        "selection": selection,
    }


def _linear_row(call: _Call) -> dict[str, int]:
    m: Any = call.module
    x = call.inputs[0]
    rows = x.numel() // m.in_features
    k, selection, sparse_input = m.out_features, 0, True
    if isinstance(m, SSPropMixin) and m.keep < 1.0:
        k = kept_channels(m.keep, m.out_features)
        selection = 2 * rows * m.out_features
        sparse_input = m.sparse_input_grad
    return {
        "forward": fm.linear_forward(rows, m.in_features, m.out_features),
        "grad_input": fm.linear_grad(rows, m.in_features, k if sparse_input else m.out_features),
        "grad_weight": fm.linear_grad(rows, m.in_features, k),
        "grad_bias": fm.linear_grad_bias(rows, k),
        "selection": selection,
    }


def _mha_dims(call: _Call) -> tuple[int, int, int]:
    m: Any = call.module
    q, k = call.inputs[:2]
    seq_dim = 1 if m.batch_first else 0
    batch = q.shape[1 - seq_dim] if q.dim() == 3 else 1
    lq, lk = q.shape[seq_dim if q.dim() == 3 else 0], k.shape[seq_dim if k.dim() == 3 else 0]
    return batch, lq, lk


def _mha_row(call: _Call) -> dict[str, int]:
    """The input and output projections (matmuls); the attention itself is its own row."""
    m: Any = call.module
    batch, lq, lk = _mha_dims(call)
    e = m.embed_dim
    proj = fm.linear_forward(batch * lq, e, e) + fm.linear_forward(batch * lk, m.kdim, e)
    proj += fm.linear_forward(batch * lk, m.vdim, e) + fm.linear_forward(batch * lq, e, e)
    bias = (3 * lq + lq) * batch * e if m.in_proj_bias is not None else 0
    return {"forward": proj, "grad_input": proj, "grad_weight": proj, "grad_bias": bias}


def _mha_attention(call: _Call) -> tuple[int, int]:
    m: Any = call.module
    batch, lq, lk = _mha_dims(call)
    dims = (batch * m.num_heads, lq, lk, m.embed_dim // m.num_heads, m.embed_dim // m.num_heads)
    return fm.sdpa_forward(*dims), fm.sdpa_backward(*dims)


def _elementwise_row(call: _Call) -> dict[str, int]:
    m = call.module
    x, y = call.inputs[0], _first(call.output)
    name = type(m).__name__
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
            window = math.prod(_tuple(m.kernel_size, x.dim() - 2))
        is_max = "Max" in name
        fwd, gi = (fm.max_pool if is_max else fm.avg_pool)(y.numel(), window)
    return {"forward": fwd, "grad_input": gi, "grad_weight": 0, "grad_bias": 0}


def _tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _row(call: _Call, keep: float | None) -> dict[str, Any]:
    m = call.module
    if isinstance(m, nn.modules.conv._ConvNd):
        counts = _conv_row(call, keep if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) else None)
    elif isinstance(m, nn.Linear):
        counts = _linear_row(call)
    elif isinstance(m, nn.MultiheadAttention):
        counts = _mha_row(call)
    else:
        counts = _elementwise_row(call)
    if not _needs_grad(call.inputs[0]):
        counts["grad_input"] = 0
    if isinstance(m, nn.MultiheadAttention):
        return counts  # its projections' weights are not attributes named weight/bias
    weight = getattr(m, "weight", None)
    if not (isinstance(weight, torch.Tensor) and weight.requires_grad):
        counts["grad_weight"] = 0
    bias = getattr(m, "bias", None)
    if not (isinstance(bias, torch.Tensor) and bias.requires_grad):
        counts["grad_bias"] = 0
    return counts


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
    that keep to every Conv1d/2d/3d, plain or ssProp ("what would ssProp save here?").
    The first layer has no grad_input unless ``input_requires_grad``.
    """
    if keep is not None:
        keep = check_keep(keep)
    tensors = _to_tensors(model, inputs)
    for t in tensors:
        t.requires_grad_(input_requires_grad and t.is_floating_point())
    calls: list[_Call] = []
    stack: list[_Call] = []
    names = {m: n for n, m in model.named_modules()}

    def pre(module: nn.Module, args: tuple[Any, ...]) -> None:
        stack.append(
            _Call(
                module,
                names.get(module, "?"),
                [a for a in args if isinstance(a, torch.Tensor)],
                None,
            )
        )

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        call = stack.pop()
        call.output = output
        calls.append(call)

    handles = [
        h
        for m in model.modules()
        for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))
    ]
    meta_state = {
        name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
        for name, t in [*model.named_parameters(), *model.named_buffers()]
    }
    was_training = {m: m.training for m in model.modules()}
    recorder = _Recorder(stack)
    try:
        model.eval()
        with torch.enable_grad(), recorder:
            torch.func.functional_call(model, meta_state, tuple(tensors))
    except (RuntimeError, ValueError) as exc:
        shapes = ", ".join(_shape(t) for t in tensors)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"inputs: shape {shapes} does not fit the model ({first})") from None
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training.items():
            m.train(flag)
    return _report(model, calls, recorder.top_level, keep)


def _report(
    model: nn.Module, calls: list[_Call], top_level: list[tuple[str, int, int]], keep: float | None
) -> FlopReport:
    rows, skipped = [], []
    for call in calls:
        m = call.module
        own_params = sum(p.numel() for p in m.parameters(recurse=False))
        base = {
            "module": call.name or type(m).__name__,
            "type": type(m).__name__,
            "params": own_params,
            "output_shape": _shape(call.output),
        }
        if _has_formula(m):
            counts = _row(call, keep)
            rows.append({**base, **counts})
            if isinstance(m, nn.MultiheadAttention):
                fwd, bwd = _mha_attention(call)
                rows.append(
                    {**base, "type": "attention", "params": 0, "forward": fwd, "grad_input": bwd}
                )
        elif not list(m.children()) and not isinstance(m, FREE):
            skipped.append(f"{call.name or type(m).__name__} ({type(m).__name__})")
        for kind, fwd, bwd in call.extra:
            rows.append({**base, "type": kind, "params": 0, "forward": fwd, "grad_input": bwd})
    for kind, fwd, bwd in top_level:
        rows.append(
            {
                "module": "(functional)",
                "type": kind,
                "params": 0,
                "output_shape": "",
                "forward": fwd,
                "grad_input": bwd,
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    counts = ["forward", "grad_input", "grad_weight", "grad_bias", "selection"]
    table[counts] = table[counts].fillna(0).astype("int64")
    table["backward"] = table["grad_input"] + table["grad_weight"] + table["grad_bias"]
    table["total"] = table["forward"] + table["backward"] + table["selection"]
    table["params"] = table["params"].fillna(0).astype("int64")
    return FlopReport(table=table, skipped=skipped)


Formula = Callable[..., int]
