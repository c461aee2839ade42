"""The built-in formulas, registered for the modules and the aten ops they cover.

A layer (``nn.Conv2d``, ``nn.Linear``, a norm, an activation) is counted by its module
formula; the same computation written functionally between layers (``F.conv2d``,
``x @ w``, ``F.relu(out + shortcut)``, ``torch.cat``) is seen as aten ops below autograd
and counted by the op formulas. Both call the one cost function per kind of computation
below (``convolution``, ``dense``, ``pool``, ...), and the arithmetic itself lives in
:mod:`.formulas`. Ops that only move, view or create data are registered as free (no row).
"""

from __future__ import annotations

from math import prod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..sparse import kept_channels
from . import formulas as fm
from .registry import Call, FlopCost, needs_grad, register_flop_formula

aten = torch.ops.aten


# One cost function per kind of computation, shared by module and op formulas.


def convolution(
    x: torch.Tensor,
    w: torch.Tensor,
    b: Any,
    y: torch.Tensor,
    transposed: bool,
    groups: int,
    keep: float = 1.0,
    selection: str = "topk",
    sparse_input: bool = True,
    type: str = "",
) -> FlopCost:
    """A convolution (transposed or not) of ``x`` with filters ``w`` giving ``y``; below
    ``keep`` 1 only the kept output channels' gradients are computed (never for transposed)."""
    kernel = tuple(w.shape[2:])
    n = x.shape[0] if x.dim() == w.dim() else 1
    out_spatial = tuple(y.shape[-len(kernel) :])
    if transposed:
        c_in, c_out = w.shape[0], w.shape[1] * groups
        flops = fm.conv_transpose_forward(
            n, c_in, c_out, groups, kernel, tuple(x.shape[-len(kernel) :])
        )
        grads = (flops, flops, fm.conv_grad_bias(n, c_out, out_spatial), 0)
    else:
        c_in, c_out = w.shape[1] * groups, w.shape[0]
        flops = fm.conv_forward(n, c_in, c_out, groups, kernel, out_spatial)
        k, scoring = c_out, 0
        if keep < 1.0:
            k = kept_channels(keep, c_out, groups)
            scoring = fm.channel_scoring(y.numel(), selection)
        grads = (
            fm.conv_grad_input(n, c_in, k if sparse_input else c_out, groups, kernel, out_spatial),
            fm.conv_grad_weight(n, c_in, k, groups, kernel, out_spatial),
            fm.conv_grad_bias(n, k, out_spatial),
            scoring,
        )
    return FlopCost(
        type,
        flops,
        grads[0] if needs_grad(x) else 0,
        grads[1] if needs_grad(w) else 0,
        grads[2] if needs_grad(b) else 0,
        grads[3],
    )


def dense(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: Any,
    batch: int,
    rows: int,
    inner: int,
    outs: int,
    keep: float = 1.0,
    selection: str = "topk",
    sparse_input: bool = True,
    type: str = "",
) -> FlopCost:
    """``batch`` products of ``a`` (rows x inner) by ``b`` (inner x outs), plus ``bias``: a
    linear layer or a matmul. Each operand's gradient is a matmul of the same size; below
    ``keep`` 1 only the kept output features' gradients are computed."""
    k, scoring = outs, 0
    if keep < 1.0:
        k = kept_channels(keep, outs)
        scoring = fm.channel_scoring(batch * rows * outs, selection)
    return FlopCost(
        type,
        fm.matmul(batch, rows, inner, outs),
        fm.linear_grad(batch * rows, inner, k if sparse_input else outs) if needs_grad(a) else 0,
        fm.linear_grad(batch * rows, inner, k) if needs_grad(b) else 0,
        fm.linear_grad_bias(batch * rows, k) if needs_grad(bias) else 0,
        scoring,
    )


def pool(maximum: bool, x: torch.Tensor, y: torch.Tensor, window: int, type: str = "") -> FlopCost:
    """Max or average pooling of ``window`` inputs per output."""
    forward, grad = (fm.max_pool if maximum else fm.avg_pool)(y.numel(), window)
    return FlopCost(type, forward, grad if needs_grad(x) else 0)


def pool_window(kernel: Any, dims: int) -> int:
    """Inputs per window of a ``dims``-d pooling kernel (one size stands for every dim)."""
    sizes = [kernel] if isinstance(kernel, int) else list(kernel)
    return prod(sizes) if len(sizes) == dims else sizes[0] ** dims


def adaptive_window(x: torch.Tensor, y: torch.Tensor) -> int:
    return max(1, x.numel() // max(1, y.numel()))


def activation(name: str, x: torch.Tensor, type: str = "") -> FlopCost:
    """An element-wise activation, by its entry in ``formulas.ACTIVATION_COST``."""
    forward, grad = fm.activation(name, x.numel())
    return FlopCost(type, forward, grad if needs_grad(x) else 0)


def embedding(weight: torch.Tensor, y: torch.Tensor, type: str = "") -> FlopCost:
    forward, grad = fm.embedding(y.numel())
    return FlopCost(type, forward, grad_weight=grad if needs_grad(weight) else 0)


def upsample(x: torch.Tensor, y: torch.Tensor, mode: str, type: str = "") -> FlopCost:
    forward, grad = fm.upsample(y.numel(), mode)
    return FlopCost(type, forward, grad if needs_grad(x) else 0)


# Layers.


@register_flop_formula(nn.modules.conv._ConvNd)
def conv_layer(call: Call) -> FlopCost:
    m: Any = call.target
    return convolution(
        call.input,
        m.weight,
        m.bias,
        call.out,
        m.transposed,
        m.groups,
        call.keep,
        getattr(m, "selection", "topk"),
        getattr(m, "sparse_input_grad", True),
    )


@register_flop_formula(nn.Linear)
def linear_layer(call: Call) -> FlopCost:
    m: Any = call.target
    x = call.input
    rows = x.numel() // m.in_features
    return dense(
        x,
        m.weight,
        m.bias,
        1,
        rows,
        m.in_features,
        m.out_features,
        call.keep,
        getattr(m, "selection", "topk"),
        getattr(m, "sparse_input_grad", True),
    )


@register_flop_formula(
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)
def norm_layer(call: Call) -> FlopCost:
    m: Any = call.target
    x = call.input
    affine = bool(getattr(m, "affine", getattr(m, "elementwise_affine", False)))
    grad_weight, grad_bias = fm.norm_grad_affine(x.numel()) if affine else (0, 0)
    return FlopCost(
        "",
        fm.norm_forward(x.numel(), affine),
        fm.norm_grad_input(x.numel()) if needs_grad(x) else 0,
        grad_weight if needs_grad(getattr(m, "weight", None)) else 0,
        grad_bias if needs_grad(getattr(m, "bias", None)) else 0,
    )


@register_flop_formula(nn.Embedding)
def embedding_layer(call: Call) -> FlopCost:
    m: Any = call.target
    return embedding(m.weight, call.out)


@register_flop_formula(nn.Upsample)
def upsample_layer(call: Call) -> FlopCost:
    m: Any = call.target
    return upsample(call.input, call.out, m.mode)


def _register_pool_layers() -> None:
    for dims in (1, 2, 3):
        max_layer, avg_layer = getattr(nn, f"MaxPool{dims}d"), getattr(nn, f"AvgPool{dims}d")

        @register_flop_formula(max_layer, avg_layer)
        def pool_layer(call: Call, dims: int = dims) -> FlopCost:
            m: Any = call.target
            window = pool_window(m.kernel_size, dims)
            return pool(isinstance(m, nn.modules.pooling._MaxPoolNd), call.input, call.out, window)

    @register_flop_formula(
        nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd
    )
    def adaptive_pool_layer(call: Call) -> FlopCost:
        x, y = call.input, call.out
        maximum = isinstance(call.target, nn.modules.pooling._AdaptiveMaxPoolNd)
        return pool(maximum, x, y, adaptive_window(x, y))


def _register_activation_layers() -> None:
    for name in fm.ACTIVATION_COST:

        @register_flop_formula(getattr(nn, name))
        def activation_layer(call: Call, name: str = name) -> FlopCost:
            return activation(name, call.input)


@register_flop_formula(nn.MultiheadAttention)
def multihead_attention(call: Call) -> list[FlopCost]:
    """The four projections (matmuls) and the attention itself (its own row).

    ``need_weights=True`` (the default) makes torch run the unfused math path, whose
    backward is four matmuls; ``need_weights=False`` runs a fused kernel (five)."""
    m: Any = call.target
    q, k, v = attention_args(call)
    seq = 1 if m.batch_first else 0
    batch = q.shape[1 - seq] if q.dim() == 3 else 1
    lq, lk = q.shape[seq if q.dim() == 3 else 0], k.shape[seq if k.dim() == 3 else 0]
    e, head = m.embed_dim, m.embed_dim // m.num_heads
    projections = [(q, batch * lq, e), (k, batch * lk, m.kdim), (v, batch * lk, m.vdim)]
    forward = sum(fm.linear_forward(rows, d, e) for _, rows, d in projections)
    forward += fm.linear_forward(batch * lq, e, e)
    grad_input = sum(fm.linear_forward(r, d, e) for t, r, d in projections if needs_grad(t))
    grad_input += fm.linear_forward(batch * lq, e, e)  # out_proj's input: the attention output
    trains = any(p.requires_grad for p in m.parameters())
    grad_bias = 0
    if m.in_proj_bias is not None and m.in_proj_bias.requires_grad:
        grad_bias += batch * (lq + 2 * lk) * e
    if m.out_proj.bias is not None and m.out_proj.bias.requires_grad:
        grad_bias += batch * lq * e
    dims = (batch * m.num_heads, lq, lk, head, head)
    fused = not call.kwargs.get("need_weights", True)
    backward = (fm.sdpa_backward if fused else fm.sdpa_math_backward)(*dims)
    return [
        FlopCost("", forward, grad_input, forward if trains else 0, grad_bias),
        FlopCost("attention" if fused else "attention_math", fm.sdpa_forward(*dims), backward),
    ]


def attention_args(call: Call) -> list[Any]:
    """query, key and value of an attention call, given by position or by name."""
    names = ("query", "key", "value")
    return [call.args[i] if i < len(call.args) else call.kwargs.get(n) for i, n in enumerate(names)]


# Ops between layers.

FREE_OPS = (
    # views and reshapes
    *("view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute"),
    *("expand", "expand_as", "unsqueeze", "squeeze", "flatten", "movedim", "as_strided"),
    *("slice", "select", "narrow", "split", "split_with_sizes", "unbind", "chunk", "unfold"),
    # copies and gathers
    *("cat", "stack", "clone", "detach", "alias", "_to_copy", "copy_", "contiguous"),
    *("index_select", "index", "gather", "repeat", "roll", "flip", "masked_fill"),
    *("constant_pad_nd", "pad", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle"),
    *("native_channel_shuffle", "lift_fresh"),
    # creation
    *("empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like"),
    *("full", "full_like", "new_zeros", "new_ones", "new_empty", "new_full", "fill_", "zero_"),
    "arange",
)


@register_flop_formula(*FREE_OPS)
def free(call: Call) -> list[FlopCost]:
    """Ops that only move, view or create data: 0 FLOPs, no row."""
    return []


@register_flop_formula("convolution")
def convolution_op(call: Call) -> FlopCost:
    """``aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding,
    groups)`` called functionally (``F.conv2d``): dense."""
    x, w, b = call.args[:3]
    return convolution(x, w, b, call.out, bool(call.args[6]), int(call.args[8]), type="convolution")


@register_flop_formula("mm", "bmm")
def matmul_op(call: Call) -> FlopCost:
    a, b = call.args[:2]
    return _matmul(a, b, None)


@register_flop_formula("addmm", "baddbmm")
def matmul_bias_op(call: Call) -> FlopCost:
    """``bias + a @ b``: the add is not counted (as torch's counter does not)."""
    bias, a, b = call.args[:3]
    return _matmul(a, b, bias)


def _matmul(a: torch.Tensor, b: torch.Tensor, bias: Any) -> FlopCost:
    batch = a.shape[0] if a.dim() == 3 else 1
    return dense(a, b, bias, batch, a.shape[-2], a.shape[-1], b.shape[-1], type="matmul")


@register_flop_formula(aten.scaled_dot_product_attention)
def attention_op(call: Call) -> FlopCost:
    """``F.scaled_dot_product_attention``, counted as torch's fused kernels are, whatever
    path the meta device takes for it."""
    q, k, v = attention_args(call)
    dims = (q.shape[:-2].numel(), q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1])
    return FlopCost("attention", fm.sdpa_forward(*dims), fm.sdpa_backward(*dims))


def _register_activation_ops() -> None:
    names = {
        "ReLU": ("relu", "relu_"),
        "GELU": ("gelu", "gelu_"),
        "SiLU": ("silu", "silu_"),
        "Sigmoid": ("sigmoid", "sigmoid_"),
        "Tanh": ("tanh", "tanh_"),
        "Hardtanh": ("hardtanh", "hardtanh_"),
        "LeakyReLU": ("leaky_relu", "leaky_relu_"),
        "ELU": ("elu", "elu_"),
        "Hardswish": ("hardswish", "hardswish_"),
        "Hardsigmoid": ("hardsigmoid", "hardsigmoid_"),
        "Mish": ("mish", "mish_"),
        "Softmax": ("_softmax", "_safe_softmax"),
        "LogSoftmax": ("_log_softmax",),
    }
    for name, ops in names.items():

        @register_flop_formula(*ops)
        def activation_op(call: Call, name: str = name) -> FlopCost:
            return activation(name, call.args[0], type=name.lower())


def _register_pool_ops() -> None:
    for dims in (1, 2, 3):

        @register_flop_formula(f"max_pool{dims}d", f"max_pool{dims}d_with_indices")
        def max_pool_op(call: Call, dims: int = dims) -> FlopCost:
            window = pool_window(call.args[1], dims)
            return pool(True, call.args[0], call.out, window, type="max_pool")

        @register_flop_formula(f"avg_pool{dims}d")
        def avg_pool_op(call: Call, dims: int = dims) -> FlopCost:
            window = pool_window(call.args[1], dims)
            return pool(False, call.args[0], call.out, window, type="avg_pool")

        adaptive_avg = "adaptive_avg_pool1d" if dims == 1 else f"_adaptive_avg_pool{dims}d"
        for op, maximum in ((adaptive_avg, False), (f"adaptive_max_pool{dims}d", True)):

            @register_flop_formula(op)
            def adaptive_pool_op(call: Call, maximum: bool = maximum) -> FlopCost:
                x, y = call.args[0], call.out
                kind = "adaptive_max_pool" if maximum else "adaptive_avg_pool"
                return pool(maximum, x, y, adaptive_window(x, y), type=kind)


def _register_upsample_ops() -> None:
    modes = {
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
    for op, mode in modes.items():

        @register_flop_formula(op)
        def upsample_op(call: Call, mode: str = mode) -> FlopCost:
            return upsample(call.args[0], call.out, mode, type="upsample")


@register_flop_formula("add", "add_", "sub", "sub_", "rsub")
def add_op(call: Call) -> FlopCost:
    """The gradient passes through unchanged: no backward FLOPs."""
    return FlopCost("add", fm.elementwise(call.out.numel()))


@register_flop_formula("mul", "mul_", "div", "div_")
def mul_op(call: Call) -> FlopCost:
    """One product per element for each operand that needs a gradient."""
    numel = call.out.numel()
    grads = sum(1 for a in call.args[:2] if needs_grad(a))
    return FlopCost("mul", fm.elementwise(numel), grads * numel)


UNARY_OPS = (
    *("abs", "abs_", "neg", "neg_", "exp", "exp_", "exp2", "exp2_", "expm1", "expm1_"),
    *("log", "log_", "log2", "log2_", "log1p", "log1p_", "sqrt", "sqrt_", "rsqrt", "rsqrt_"),
    *("reciprocal", "reciprocal_", "sin", "sin_", "cos", "cos_", "tan", "tan_", "pow", "pow_"),
    *("erf", "erf_", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_"),
    *("square", "square_"),
)


@register_flop_formula(*UNARY_OPS)
def unary_op(call: Call) -> FlopCost:
    forward, grad = fm.unary(call.out.numel())
    return FlopCost("math", forward, grad if needs_grad(call.args[0]) else 0)


@register_flop_formula("embedding")
def embedding_op(call: Call) -> FlopCost:
    return embedding(call.args[0], call.out, type="embedding")


@register_flop_formula("mean")
def mean_op(call: Call) -> FlopCost:
    x, y = call.args[0], call.out
    return pool(False, x, y, adaptive_window(x, y), type="mean")


@register_flop_formula("sum")
def sum_op(call: Call) -> FlopCost:
    return FlopCost("sum", fm.reduce_sum(call.args[0].numel()))


_register_pool_layers()
_register_activation_layers()
_register_activation_ops()
_register_pool_ops()
_register_upsample_ops()

FUNCTION_OPS = {F.scaled_dot_product_attention: aten.scaled_dot_product_attention}
"""Python functions whose op decomposes before the counter's dispatch mode sees it: the
counter intercepts the function and counts it by the op's formula."""
