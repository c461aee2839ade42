"""The convolution-gradient kernel calls of the sparse layers.

``conv_backward`` is ``aten.convolution_backward`` with one rewrite, chosen by shapes and
layout alone (never by timing, so runs stay reproducible): on oneDNN (torch's CPU
convolution library, float32/bfloat16/float16) a **strided 1x1 convolution** (a ResNet
shortcut) on an NCHW input is computed as a stride-1 convolution over the subsampled input,
its input gradient scattered back into zeros. Same gradients, same FLOPs (the FLOP counter
and ``FlopCounterMode`` agree), and 1.6-3.6x faster than torch's own NCHW backward of that
convolution, which runs a strided kernel in channels-last and transposes the result.
Channels-last inputs keep torch's call: there it is fast, and the rewrite's zero-filled
input gradient measured slower on large inputs.
"""

from __future__ import annotations

import torch

_aten = torch.ops.aten
ONEDNN_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def runs_onednn(x: torch.Tensor) -> bool:
    """Whether torch computes a convolution of ``x`` with oneDNN (CPU, a oneDNN dtype)."""
    return (
        x.device.type == "cpu"
        and x.dtype in ONEDNN_DTYPES
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
    )


def channels_last_format(t: torch.Tensor) -> torch.memory_format | None:
    """The channels-last format ``t`` is laid out in, or None."""
    if t.dim() not in (4, 5) or t.is_contiguous():
        return None
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return fmt if t.is_contiguous(memory_format=fmt) else None


def _strided_pointwise(
    x: torch.Tensor, weight: torch.Tensor, stride: list[int], padding: list[int]
) -> bool:
    return (
        runs_onednn(x)
        and channels_last_format(x) is None
        and all(k == 1 for k in weight.shape[2:])
        and not any(padding)
        and any(s > 1 for s in stride)
    )


def conv_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    mask: list[bool],
) -> tuple[torch.Tensor | None, ...]:
    """``aten.convolution_backward`` (grad_input, grad_weight, grad_bias as ``mask`` asks),
    with strided 1x1 convolutions of NCHW inputs on oneDNN computed over the subsampled
    input."""
    dims = x.dim() - 2
    bias_sizes = [weight.shape[0]] if mask[2] else None
    if not _strided_pointwise(x, weight, stride, padding):
        return _aten.convolution_backward(
            dy, x, weight, bias_sizes, stride, padding, dilation, False, [0] * dims, groups, mask
        )
    sub = (slice(None), slice(None), *(slice(None, None, s) for s in stride))
    x_sub = x[sub]
    if mask[1]:  # the weight gradient reads it: one dense copy
        x_sub = x_sub.contiguous()
    gx_sub, gw, gb = _aten.convolution_backward(
        dy, x_sub, weight, bias_sizes, [1] * dims, padding, dilation, False, [0] * dims, groups,
        mask,
    )  # fmt: skip
    gx = None
    if mask[0]:
        gx = torch.zeros_like(x)
        gx[sub] = gx_sub
    return gx, gw, gb
