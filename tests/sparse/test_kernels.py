"""The kernel calls of a sparse convolution on oneDNN (float32 on the CPU): plain sliced
calls, and strided 1x1 convolutions computed over the subsampled input. Each gives the
masked reference's gradients and does the work the FLOP counter predicts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ssprop_energy import SSPropConv2d, count_flops
from ssprop_energy.flops.crosscheck import CORRECTIONS
from ssprop_energy.sparse import select_channels
from ssprop_energy.sparse.kernels import runs_onednn

pytestmark = pytest.mark.skipif(
    not runs_onednn(torch.empty(0)), reason="torch runs no oneDNN convolution here"
)

CASES = {
    # name: (cin, cout, kernel, stride, padding, groups, keep)
    "3x3": (8, 64, 3, 1, 1, 1, 0.2),
    "3x3 stride 2": (8, 32, 3, 2, 1, 1, 0.5),
    "depthwise": (16, 16, 3, 2, 1, 16, 0.5),
    "1x1 stride 2": (16, 64, 1, 2, 0, 1, 0.2),
    "1x1 stride 3": (8, 64, 1, 3, 0, 1, 0.5),
    "1x1 stride 2, grouped": (16, 32, 1, 2, 0, 4, 0.5),
}


class _ConvBackwardCalls(TorchDispatchMode):
    """Records (input shape, stride) of every ``convolution_backward`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], list[int]]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten.convolution_backward.default:
            self.calls.append((tuple(args[1].shape), list(args[4])))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("sparse_input_grad", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_every_kernel_path_gives_the_masked_reference(
    name: str, channels_last: bool, sparse_input_grad: bool
) -> None:
    cin, cout, kernel, stride, padding, groups, keep = CASES[name]
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    sparse = SSPropConv2d(cin, cout, kernel, stride, padding, groups=groups, keep=keep,
                          sparse_input_grad=sparse_input_grad).to(memory_format=fmt)  # fmt: skip
    dense = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups).double()
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(3, cin, 11, 11).contiguous(memory_format=fmt).requires_grad_()
    y = sparse(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    mask = torch.zeros(cout, dtype=torch.float64)
    mask[select_channels(dy, keep, groups)] = 1
    xd = x.detach().double().requires_grad_()
    dense(xd).backward(dy.double() * mask.view(1, -1, 1, 1))
    gx_ref = xd.grad
    if not sparse_input_grad:  # grad_input from the whole output gradient
        gx_ref = torch.autograd.grad(dense(xd), xd, dy.double())[0]
    close = {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(x.grad.double(), gx_ref, **close)
    torch.testing.assert_close(sparse.weight.grad.double(), dense.weight.grad, **close)
    torch.testing.assert_close(sparse.bias.grad.double(), dense.bias.grad, **close)
    assert torch.all(sparse.weight.grad[mask == 0] == 0)
    assert torch.all(sparse.bias.grad[mask == 0] == 0)
    assert x.grad.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("name", list(CASES))
def test_each_path_does_the_work_the_counter_predicts(name: str) -> None:
    cin, cout, kernel, stride, padding, groups, keep = CASES[name]
    layer = SSPropConv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False, keep=keep)
    x = torch.randn(2, cin, 11, 11, requires_grad=True)
    y = layer(x)
    with FlopCounterMode(display=False, custom_mapping=CORRECTIONS) as counter:
        y.backward(torch.randn_like(y))
    executed = counter.get_flop_counts()["Global"][torch.ops.aten.convolution_backward]
    report = count_flops(layer, (2, cin, 11, 11), input_requires_grad=True)
    assert executed == report.backward
    dense = count_flops(nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False),
                        (2, cin, 11, 11), input_requires_grad=True)  # fmt: skip
    assert executed < dense.backward


def test_strided_pointwise_nchw_runs_at_stride_one_on_the_subsampled_input() -> None:
    layer = SSPropConv2d(16, 64, 1, stride=2, bias=False, keep=0.2)
    x = torch.randn(2, 16, 11, 11, requires_grad=True)
    y = layer(x)
    with _ConvBackwardCalls() as spy:
        y.backward(torch.randn_like(y))
    assert spy.calls == [((2, 16, 6, 6), [1, 1])]
    # other convolutions, and channels-last inputs: torch's own call
    three = SSPropConv2d(16, 64, 3, stride=2, bias=False, keep=0.2)
    for conv, inputs in ((three, x), (layer, x.contiguous(memory_format=torch.channels_last))):
        y = conv(inputs)
        with _ConvBackwardCalls() as spy:
            y.backward(torch.randn_like(y))
        assert spy.calls == [((2, 16, 11, 11), [2, 2])]
