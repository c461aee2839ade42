"""Autograd functions of ssProp: ordinary forward, channel-sliced backward.

The backward pass selects output-gradient channels (see :mod:`.selection`) and runs
``aten.convolution_backward`` (or two matmuls for Linear) on the sliced tensors, so the work
shrinks with ``keep`` (the kernel calls are in :mod:`.kernels`). Gradients of dropped
channels are zero. Slices keep the memory format of the tensors they come from
(channels-last stays channels-last), so the sliced convolution runs the same kind of kernel
as the dense one and the comparison with dense stays fair.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from .kernels import channels_last_format, conv_backward
from .selection import ScoreReduce, select_channels


def take(t: torch.Tensor, dim: int, idx: torch.Tensor) -> torch.Tensor:
    """``t.index_select(dim, idx)`` for dim 0 or 1, keeping a channels-last layout.

    A channels-last tensor is gathered as its contiguous (rows, channels) view, which is
    several times faster on CPU than ``index_select`` on the strided 4-d tensor.
    """
    if channels_last_format(t) is None:
        return t.index_select(dim, idx)
    nhwc = t.permute(0, *range(2, t.dim()), 1)
    if dim == 0:
        out = nhwc.reshape(t.shape[0], -1).index_select(0, idx).view(-1, *nhwc.shape[1:])
    else:
        out = nhwc.reshape(-1, t.shape[1]).index_select(1, idx).view(*nhwc.shape[:-1], -1)
    return out.permute(0, t.dim() - 1, *range(1, t.dim() - 1))


def _cast_for_autocast(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Apply autocast's cast (as built-in convs and linears get it) before a custom function."""
    device_type = x.device.type
    if not torch.amp.is_autocast_available(device_type):
        return x, weight, bias
    if not torch.is_autocast_enabled(device_type):
        return x, weight, bias
    dtype = torch.get_autocast_dtype(device_type)

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if t.is_floating_point() else t

    return cast(x), cast(weight), None if bias is None else cast(bias)


def _no_autocast(x: torch.Tensor) -> contextlib.AbstractContextManager[object]:
    """Autocast off inside the function (its inputs are already cast); meta has no autocast."""
    if torch.amp.is_autocast_available(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


class SparseConvFunction(torch.autograd.Function):
    """N-d convolution whose backward keeps only the selected output-gradient channels."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: list[int],
        padding: list[int],
        dilation: list[int],
        groups: int,
        keep: float,
        selection: str,
        sparse_input_grad: bool,
        reduce: ScoreReduce | None = None,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups, keep, selection, sparse_input_grad, reduce)
        ctx.has_bias = bias is not None
        conv = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        return conv(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, keep, selection, sparse_input_grad, reduce = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        dy = grad_output
        out_channels = weight.shape[0]
        conf = (stride, padding, dilation)
        idx = select_channels(dy, keep, groups, selection, reduce)
        k = idx.numel()
        if k == out_channels:
            grads = conv_backward(dy, x, weight, *conf, groups, [need_x, need_w, need_b])
            return *grads, None, None, None, None, None, None, None, None

        depthwise = groups > 1 and out_channels == groups
        dy_s = take(dy, 1, idx)
        w_s = take(weight, 0, idx)
        slice_x = need_x and sparse_input_grad
        in_idx = None
        x_s, groups_s = x, groups
        if depthwise:  # whole groups: slice the matching input channels too
            in_per_group = x.shape[1] // groups
            offsets = torch.arange(in_per_group, device=idx.device)
            in_idx = (idx.unsqueeze(1) * in_per_group + offsets).flatten()
            x_s, groups_s = take(x, 1, in_idx), k
        gx_s, gw_s, gb_s = conv_backward(dy_s, x_s, w_s, *conf, groups_s, [slice_x, need_w, need_b])
        # conv_backward returns a gradient exactly where the mask asks for one
        grad_x = None
        if gx_s is not None:  # slice_x
            grad_x = gx_s if in_idx is None else torch.zeros_like(x).index_copy_(1, in_idx, gx_s)
        elif need_x:
            grad_x = conv_backward(dy, x, weight, *conf, groups, [True, False, False])[0]
        grad_w = None if gw_s is None else torch.zeros_like(weight).index_copy_(0, idx, gw_s)
        grad_b = None if gb_s is None else dy.new_zeros(out_channels).index_copy_(0, idx, gb_s)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None, None


class SparseLinearFunction(torch.autograd.Function):
    """Linear layer whose backward keeps only the selected output features."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        keep: float,
        selection: str,
        sparse_input_grad: bool,
        reduce: ScoreReduce | None = None,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (keep, selection, sparse_input_grad, reduce)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        keep, selection, sparse_input_grad, reduce = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dy = grad_output.reshape(-1, weight.shape[0])
        x2 = x.reshape(-1, weight.shape[1])
        idx = select_channels(dy, keep, 1, selection, reduce)
        dy_s = dy.index_select(1, idx)
        grad_x = grad_w = grad_b = None
        if need_x:
            if sparse_input_grad:
                grad_x = (dy_s @ weight.index_select(0, idx)).reshape(x.shape)
            else:
                grad_x = (dy @ weight).reshape(x.shape)
        if need_w:
            grad_w = torch.zeros_like(weight).index_copy_(0, idx, dy_s.t() @ x2)
        if need_b and ctx.has_bias:
            grad_b = dy.new_zeros(weight.shape[0]).index_copy_(0, idx, dy_s.sum(0))
        return grad_x, grad_w, grad_b, None, None, None, None


def sparse_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    keep: float,
    selection: str = "topk",
    sparse_input_grad: bool = True,
    reduce: ScoreReduce | None = None,
) -> torch.Tensor:
    """Functional ssProp convolution (1-d, 2-d or 3-d by the rank of ``x``), autocast-aware;
    ``reduce``: see ``select_channels``."""
    x, weight, bias = _cast_for_autocast(x, weight, bias)
    with _no_autocast(x):
        return SparseConvFunction.apply(
            x,
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
            keep,
            selection,
            sparse_input_grad,
            reduce,
        )


def sparse_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    keep: float,
    selection: str = "topk",
    sparse_input_grad: bool = True,
    reduce: ScoreReduce | None = None,
) -> torch.Tensor:
    """Functional ssProp linear layer, autocast-aware; ``reduce``: see ``select_channels``."""
    x, weight, bias = _cast_for_autocast(x, weight, bias)
    with _no_autocast(x):
        return SparseLinearFunction.apply(
            x, weight, bias, keep, selection, sparse_input_grad, reduce
        )
