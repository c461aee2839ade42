"""Costs of the aten ops a model runs between its layers (the glue of its ``forward``).

A residual block's ``F.relu(out + shortcut)``, a UNet's ``F.max_pool2d`` and
``torch.cat``, a hand-written projection ``x @ w``: none of them is a module with a
formula, yet they run. The counter sees them as aten ops (below autograd, on the meta
device) and looks them up here. Each entry turns the op's argument and output shapes (and
which arguments need a gradient) into ``OpCost``; the arithmetic itself lives in
:mod:`.formulas`. ``FREE_OPS`` move or create data and cost nothing. An op in neither table
is listed by the counter as skipped, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

import torch

from . import formulas as fm

aten = torch.ops.aten


@dataclass(frozen=True)
class OpCost:
    """FLOPs of one functional op. ``grad_input`` is the gradient of its first tensor
    argument (plus any other data argument), ``grad_weight`` of its second operand when that
    is a weight (a matmul's right side, a convolution's filters)."""

    type: str
    forward: int
    grad_input: int = 0
    grad_weight: int = 0
    grad_bias: int = 0


OpFormula = Callable[[tuple[Any, ...], Any], OpCost]

FREE_OP_NAMES = (
    # views and reshapes
    ("view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute"),
    ("expand", "expand_as", "unsqueeze", "squeeze", "flatten", "movedim", "as_strided"),
    ("slice", "select", "narrow", "split", "split_with_sizes", "unbind", "chunk", "unfold"),
    # copies and gathers
    ("cat", "stack", "clone", "detach", "alias", "_to_copy", "copy_", "contiguous"),
    ("index_select", "index", "gather", "repeat", "roll", "flip", "masked_fill"),
    ("constant_pad_nd", "pad", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle"),
    ("native_channel_shuffle", "lift_fresh"),
    # creation
    ("empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like"),
    ("full", "full_like", "new_zeros", "new_ones", "new_empty", "new_full", "fill_", "zero_"),
    ("arange",),
)
FREE_OPS = frozenset(getattr(aten, name) for group in FREE_OP_NAMES for name in group)
"""Ops that only move, view or create data: 0 FLOPs."""


def needs_grad(t: Any) -> bool:
    """Whether ``t`` is a tensor that needs a gradient."""
    return isinstance(t, torch.Tensor) and t.requires_grad


def _out(out: Any) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out[0]


def _activation(name: str) -> OpFormula:
    def cost(args: tuple[Any, ...], out: Any) -> OpCost:
        forward, grad = fm.activation(name, args[0].numel())
        return OpCost(name.lower(), forward, grad if needs_grad(args[0]) else 0)

    return cost


def _unary(args: tuple[Any, ...], out: Any) -> OpCost:
    forward, grad = fm.unary(_out(out).numel())
    return OpCost("math", forward, grad if needs_grad(args[0]) else 0)


def _embedding(args: tuple[Any, ...], out: Any) -> OpCost:
    forward, grad = fm.embedding(_out(out).numel())
    return OpCost("embedding", forward, grad_weight=grad if needs_grad(args[0]) else 0)


def _binary(passes_gradient: bool) -> OpFormula:
    """add/sub (the gradient passes through) or mul/div (one product per grad operand)."""

    def cost(args: tuple[Any, ...], out: Any) -> OpCost:
        numel = out.numel()
        if passes_gradient:
            return OpCost("add", fm.elementwise(numel))
        grads = sum(1 for a in args[:2] if needs_grad(a))
        return OpCost("mul", fm.elementwise(numel), grads * numel)

    return cost


def _pool(kind: str, dims: int = 0) -> OpFormula:
    """Max or average pooling over ``dims`` spatial dimensions: the window is the kernel
    (one size stands for every dimension), or input/output for adaptive pooling (dims 0)."""

    def cost(args: tuple[Any, ...], out: Any) -> OpCost:
        x, y = args[0], _out(out)
        if dims == 0:
            window = max(1, x.numel() // max(1, y.numel()))
        else:
            kernel = [args[1]] if isinstance(args[1], int) else list(args[1])
            window = prod(kernel) if len(kernel) == dims else kernel[0] ** dims
        forward, grad = (fm.max_pool if "max" in kind else fm.avg_pool)(y.numel(), window)
        return OpCost(kind, forward, grad if needs_grad(x) else 0)

    return cost


def _mean(args: tuple[Any, ...], out: Any) -> OpCost:
    x, y = args[0], _out(out)
    forward, grad = fm.avg_pool(y.numel(), max(1, x.numel() // max(1, y.numel())))
    return OpCost("mean", forward, grad if needs_grad(x) else 0)


def _sum(args: tuple[Any, ...], out: Any) -> OpCost:
    return OpCost("sum", fm.reduce_sum(args[0].numel()))


def _upsample(mode: str) -> OpFormula:
    def cost(args: tuple[Any, ...], out: Any) -> OpCost:
        forward, grad = fm.upsample(_out(out).numel(), mode)
        return OpCost("upsample", forward, grad if needs_grad(args[0]) else 0)

    return cost


def _matmul(with_bias: bool) -> OpFormula:
    """mm/bmm (``a @ b``) and addmm/baddbmm (``bias + a @ b``, the add uncounted as torch
    does): each operand's gradient is another matmul of the same size."""

    def cost(args: tuple[Any, ...], out: Any) -> OpCost:
        bias, a, b = args[:3] if with_bias else (None, *args[:2])
        batch = a.shape[0] if a.dim() == 3 else 1
        flops = fm.matmul(batch, a.shape[-2], a.shape[-1], b.shape[-1])
        return OpCost(
            "matmul",
            flops,
            flops if needs_grad(a) else 0,
            flops if needs_grad(b) else 0,
            _out(out).numel() if needs_grad(bias) else 0,
        )

    return cost


def _convolution(args: tuple[Any, ...], out: Any) -> OpCost:
    """``aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding,
    groups)`` called functionally (``F.conv2d``): dense, by the layer formulas."""
    x, w, b = args[:3]
    transposed, groups = bool(args[6]), int(args[8])
    y = _out(out)
    kernel = tuple(w.shape[2:])
    batched = x.dim() == w.dim()
    n = x.shape[0] if batched else 1
    out_spatial = tuple(y.shape[-len(kernel) :])
    if transposed:
        c_in, c_out = w.shape[0], w.shape[1] * groups
        flops = fm.conv_transpose_forward(
            n, c_in, c_out, groups, kernel, tuple(x.shape[-len(kernel) :])
        )
    else:
        c_in, c_out = w.shape[1] * groups, w.shape[0]
        flops = fm.conv_forward(n, c_in, c_out, groups, kernel, out_spatial)
    grad_bias = fm.conv_grad_bias(n, c_out, out_spatial) if needs_grad(b) else 0
    return OpCost(
        "convolution",
        flops,
        flops if needs_grad(x) else 0,
        flops if needs_grad(w) else 0,
        grad_bias,
    )


def _table() -> dict[Any, OpFormula]:
    table: dict[Any, OpFormula] = {}
    activations = {
        "relu": "ReLU",
        "gelu": "GELU",
        "silu": "SiLU",
        "sigmoid": "Sigmoid",
        "tanh": "Tanh",
        "hardtanh": "Hardtanh",
        "leaky_relu": "LeakyReLU",
        "elu": "ELU",
        "hardswish": "Hardswish",
        "mish": "Mish",
        "_softmax": "Softmax",
        "_safe_softmax": "Softmax",
        "_log_softmax": "LogSoftmax",
    }
    for op, name in activations.items():
        for variant in (op, op + "_"):
            if hasattr(aten, variant):
                table[getattr(aten, variant)] = _activation(name)
    for op in ("add", "add_", "sub", "sub_", "rsub"):
        table[getattr(aten, op)] = _binary(passes_gradient=True)
    for op in ("mul", "mul_", "div", "div_"):
        table[getattr(aten, op)] = _binary(passes_gradient=False)
    for dims in (1, 2, 3):
        max_pool, avg_pool = _pool("max_pool", dims), _pool("avg_pool", dims)
        table[getattr(aten, f"max_pool{dims}d")] = max_pool
        if hasattr(aten, f"max_pool{dims}d_with_indices"):
            table[getattr(aten, f"max_pool{dims}d_with_indices")] = max_pool
        table[getattr(aten, f"avg_pool{dims}d")] = avg_pool
        adaptive_avg = "adaptive_avg_pool1d" if dims == 1 else f"_adaptive_avg_pool{dims}d"
        table[getattr(aten, adaptive_avg)] = _pool("adaptive_avg_pool")
        table[getattr(aten, f"adaptive_max_pool{dims}d")] = _pool("adaptive_max_pool")
    unary = "abs neg exp exp2 expm1 log log2 log1p sqrt rsqrt reciprocal sin cos tan pow erf"
    for op in (*unary.split(), "clamp", "clamp_min", "clamp_max", "square"):
        for variant in (op, op + "_"):
            if hasattr(aten, variant):
                table[getattr(aten, variant)] = _unary
    table[aten.embedding] = _embedding
    table[aten.mean] = _mean
    table[aten.sum] = _sum
    upsampling = {
        "upsample_nearest1d": "nearest",
        "upsample_nearest2d": "nearest",
        "upsample_nearest3d": "nearest",
        "_upsample_nearest_exact1d": "nearest",
        "_upsample_nearest_exact2d": "nearest",
        "_upsample_nearest_exact3d": "nearest",
        "upsample_linear1d": "linear",
        "upsample_bilinear2d": "bilinear",
        "upsample_bicubic2d": "bicubic",
        "upsample_trilinear3d": "trilinear",
    }
    for op, mode in upsampling.items():
        table[getattr(aten, op)] = _upsample(mode)
    table[aten.mm] = table[aten.bmm] = _matmul(with_bias=False)
    table[aten.addmm] = table[aten.baddbmm] = _matmul(with_bias=True)
    table[aten.convolution] = _convolution
    return table


OP_FORMULAS: dict[Any, OpFormula] = _table()
"""aten op overload packet -> its cost formula."""
