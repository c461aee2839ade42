"""The backward paths of a sparse convolution on oneDNN (float32 on the CPU): sliced,
masked, and strided 1x1 over the subsampled input. Each gives the masked reference's
gradients, and does the work the FLOP counter predicts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ssprop_energy import SSPropConv2d, count_flops
from ssprop_energy.flops.crosscheck import CORRECTIONS
from ssprop_energy.sparse import select_channels
from ssprop_energy.sparse.kernels import channel_block, computed_channels, slicing_pays

needs_onednn = pytest.mark.skipif(
    channel_block("cpu", torch.float32) is None, reason="torch runs no oneDNN here"
)


@needs_onednn
def test_slicing_pays_only_with_fewer_kernel_blocks() -> None:
    block = channel_block("cpu", torch.float32)
    assert block in (8, 16)
    assert slicing_pays(12, 64, 1, "cpu", torch.float32)
    assert not slicing_pays(64 - block + 1, 64, 1, "cpu", torch.float32)  # rounds up to 64
    assert not slicing_pays(3, block, 1, "cpu", torch.float32)  # one block: nothing to save
    assert slicing_pays(3, block, 1, "cpu", torch.float64)  # no oneDNN in float64
    assert slicing_pays(3, block, 1, "cuda", torch.float32)
    assert not slicing_pays(64, 64, 1, "cuda", torch.float32)  # all kept is dense anyway
    # grouped: per group; depthwise (one channel per group): whole groups
    assert slicing_pays(4 * 2, 4 * 16, 4, "cpu", torch.float32) == (block == 8)
    assert slicing_pays(12, 64, 64, "cpu", torch.float32)
    with torch.backends.mkldnn.flags(enabled=False):
        assert slicing_pays(3, block, 1, "cpu", torch.float32)
    assert computed_channels(0.2, 64, 1, "cpu", torch.float32) == 12
    assert computed_channels(0.8, 64, 1, "cpu", torch.float32) == 64


CASES = {
    # name: (cin, cout, kernel, stride, padding, groups, keep)
    "sliced 3x3": (8, 64, 3, 1, 1, 1, 0.2),
    "masked 3x3": (8, 16, 3, 1, 1, 1, 0.5),
    "masked depthwise": (16, 16, 3, 2, 1, 16, 0.5),
    "sliced 1x1 stride 2": (16, 64, 1, 2, 0, 1, 0.2),
    "masked 1x1 stride 2": (16, 16, 1, 2, 0, 1, 0.5),
    "sliced 1x1 stride 3": (8, 64, 1, 3, 0, 1, 0.5),
}


@needs_onednn
@pytest.mark.parametrize("sparse_input_grad", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_every_path_gives_the_masked_reference(
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


@needs_onednn
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
    assert (executed < dense.backward) == name.startswith("sliced")
