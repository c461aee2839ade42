"""How a sparse convolution's gradients are computed: which path, and the kernel calls.

Two choices, both deterministic functions of shapes, dtype and device (never of timing, so
a run is reproducible and the FLOP counter can predict the work):

- **sliced or masked.** oneDNN, torch's CPU convolution library, computes channels in blocks
  of 16 (AVX-512) or 8 (other CPUs). A kept-channel count that rounds up to every block costs
  as much as the dense gradient, and measurably more (unaligned counts fall off the fast
  kernels). There the layer runs the dense ``convolution_backward`` on the output gradient
  with its dropped channels zeroed ("masked"): the same gradient, no slower than dense. On
  other devices and dtypes (CUDA, float64) the sliced path always runs.
- **strided 1x1 convolutions** (ResNet shortcuts) on oneDNN: torch's own backward of a
  strided pointwise convolution is several times slower than the same gradient computed as a
  stride-1 convolution over the subsampled input, scattered back. Same FLOPs, same result.
"""

from __future__ import annotations

import math

import torch

from .selection import kept_channels

_aten = torch.ops.aten
ONEDNN_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def channel_block(device: torch.device | str, dtype: torch.dtype) -> int | None:
    """oneDNN's channel block for a convolution on ``device`` in ``dtype``, or None where
    torch does not run oneDNN (CUDA, float64, oneDNN disabled)."""
    if torch.device(device).type != "cpu" or dtype not in ONEDNN_DTYPES:
        return None
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return None
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


def slicing_pays(
    kept: int, out_channels: int, groups: int, device: torch.device | str, dtype: torch.dtype
) -> bool:
    """Whether the sliced backward does less work than the dense one: ``kept`` channels
    (in total) must round up to fewer kernel blocks than ``out_channels`` (per group for
    grouped convolutions; depthwise-style ones select whole groups)."""
    if kept >= out_channels:
        return False
    block = channel_block(device, dtype)
    if block is None:
        return True
    per_group = out_channels // groups
    units, total = (kept, out_channels) if per_group == 1 else (kept // groups, per_group)
    return math.ceil(units / block) * block < total


def computed_channels(
    keep: float, out_channels: int, groups: int, device: torch.device | str, dtype: torch.dtype
) -> int:
    """Output channels whose gradients a sparse convolution really computes at ``keep``:
    the kept ones when slicing pays, else all of them (the masked path)."""
    kept = kept_channels(keep, out_channels, groups)
    return kept if slicing_pays(kept, out_channels, groups, device, dtype) else out_channels


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
        channel_block(x.device, x.dtype) is not None
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
    with strided 1x1 convolutions on oneDNN computed over the subsampled input."""
    dims = x.dim() - 2
    bias_sizes = [weight.shape[0]] if mask[2] else None
    if not _strided_pointwise(x, weight, stride, padding):
        return _aten.convolution_backward(
            dy, x, weight, bias_sizes, stride, padding, dilation, False, [0] * dims, groups, mask
        )
    sub = (slice(None), slice(None), *(slice(None, None, s) for s in stride))
    x_sub = x[sub]
    if mask[1]:  # the weight gradient reads it: one dense copy in x's memory format
        x_sub = x_sub.contiguous(memory_format=channels_last_format(x) or torch.contiguous_format)
    gx_sub, gw, gb = _aten.convolution_backward(
        dy, x_sub, weight, bias_sizes, [1] * dims, padding, dilation, False, [0] * dims, groups,
        mask,
    )  # fmt: skip
    gx = None
    if mask[0]:
        gx = torch.zeros_like(x)
        gx[sub] = gx_sub
    return gx, gw, gb
