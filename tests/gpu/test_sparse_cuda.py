"""The sparse layers' gradients on CUDA against the masked reference (float64 on the CPU):
float32, and bfloat16 and float16 under autocast; contiguous and channels-last; plain,
strided 1x1, grouped and depthwise convolutions; the linear layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssprop_energy import SSPropConv2d, SSPropLinear, kept_channels
from ssprop_energy.sparse import select_channels
from tests.support.sparse_grads import reference_grads

pytestmark = pytest.mark.gpu

CONVS = {
    # name: (cin, cout, kernel, stride, padding, groups, keep)
    "3x3": (16, 64, 3, 1, 1, 1, 0.2),
    "1x1 stride 2": (16, 64, 1, 2, 0, 1, 0.5),
    "grouped": (16, 32, 3, 1, 1, 4, 0.5),
    "depthwise": (32, 32, 3, 2, 1, 32, 0.3),
}
PRECISIONS = {
    # name: (autocast dtype or None, relative tolerance of the largest reference value)
    "float32": (None, 1e-4),
    "bfloat16 autocast": (torch.bfloat16, 3e-2),
    "float16 autocast": (torch.float16, 5e-3),
}


def _rounded(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``t`` on the CPU in float64, first rounded to what autocast computes in."""
    t = t.detach() if dtype is None else t.detach().to(dtype)
    return t.cpu().double()


def _assert_matches(got: torch.Tensor, want: torch.Tensor, tolerance: float) -> None:
    scale = float(want.abs().max()) or 1.0
    torch.testing.assert_close(got.cpu().double(), want, rtol=tolerance, atol=tolerance * scale)


@pytest.mark.usefixtures("exact_float32")
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("name", list(CONVS))
def test_conv_gradients_match_the_masked_reference(
    name: str, precision: str, channels_last: bool
) -> None:
    cin, cout, kernel, stride, padding, groups, keep = CONVS[name]
    dtype, tolerance = PRECISIONS[precision]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    sparse = SSPropConv2d(cin, cout, kernel, stride, padding, groups=groups, keep=keep)
    sparse = sparse.to("cuda", memory_format=fmt)
    x = torch.randn(4, cin, 15, 15, device="cuda").contiguous(memory_format=fmt)
    x.requires_grad_()
    with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
        y = sparse(x)
    assert y.dtype == (dtype or torch.float32)
    dy = torch.randn_like(y)
    y.backward(dy)
    idx = select_channels(dy, keep, groups)
    assert idx.numel() == kept_channels(keep, cout, groups)
    mask = torch.zeros(1, cout, 1, 1, dtype=torch.float64)
    mask[0, idx.cpu(), 0, 0] = 1
    dense = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups).double()
    dense.weight.data = _rounded(sparse.weight, dtype)
    dense.bias.data = _rounded(sparse.bias, dtype)
    rx, rw, rb = reference_grads(dense, _rounded(x, dtype), _rounded(dy, None), mask)
    assert x.grad is not None and x.grad.dtype == torch.float32
    assert sparse.weight.grad is not None and sparse.weight.grad.dtype == torch.float32
    _assert_matches(x.grad, rx, tolerance)
    _assert_matches(sparse.weight.grad, rw, tolerance)
    _assert_matches(sparse.bias.grad, rb, tolerance)
    dropped = mask.view(-1) == 0
    assert torch.all(sparse.weight.grad[dropped.cuda()] == 0)
    assert x.grad.is_contiguous(memory_format=fmt)


@pytest.mark.usefixtures("exact_float32")
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_linear_gradients_match_the_masked_reference(precision: str) -> None:
    dtype, tolerance = PRECISIONS[precision]
    torch.manual_seed(1)
    sparse = SSPropLinear(48, 40, keep=0.25).cuda()
    x = torch.randn(6, 5, 48, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
        y = sparse(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    idx = select_channels(dy.reshape(-1, 40), 0.25)
    mask = torch.zeros(40, dtype=torch.float64)
    mask[idx.cpu()] = 1
    dense = nn.Linear(48, 40).double()
    dense.weight.data = _rounded(sparse.weight, dtype)
    dense.bias.data = _rounded(sparse.bias, dtype)
    rx, rw, rb = reference_grads(dense, _rounded(x, dtype), _rounded(dy, None), mask)
    _assert_matches(x.grad, rx, tolerance)
    _assert_matches(sparse.weight.grad, rw, tolerance)
    _assert_matches(sparse.bias.grad, rb, tolerance)
