"""ssProp gradients equal ordinary autograd on the masked output gradient."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ssprop_energy import SSPropConv1d, SSPropConv2d, SSPropConv3d, SSPropLinear, kept_channels
from ssprop_energy.sparse import select_channels
from tests.support.sparse_grads import reference_grads

DTYPE = torch.float64


def _sparse_grads(layer: nn.Module, x: torch.Tensor, dy: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    layer.zero_grad()
    layer(x).backward(dy)
    bias = layer.bias.grad if layer.bias is not None else None
    return x.grad, layer.weight.grad, bias


def _channel_mask(dy: torch.Tensor, keep: float, groups: int, selection: str, seed: int):
    torch.manual_seed(seed)
    idx = select_channels(dy, keep, groups, selection)
    shape = [1] * dy.dim()
    shape[1] = dy.shape[1]
    mask = torch.zeros(dy.shape[1], dtype=dy.dtype)
    mask[idx] = 1
    return mask.view(shape), idx


def _check_conv(
    cls,
    dense_cls,
    dims,
    cin_per_group,
    cout_per_group,
    groups,
    kernel,
    stride,
    padding,
    dilation,
    bias,
    padding_mode,
    keep,
    selection,
    sparse_input_grad,
    batch,
    size,
    seed,
):
    torch.manual_seed(seed)
    cin, cout = cin_per_group * groups, cout_per_group * groups
    kwargs = dict(
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
        padding_mode=padding_mode,
    )
    sparse = cls(
        cin,
        cout,
        kernel,
        keep=keep,
        selection=selection,
        sparse_input_grad=sparse_input_grad,
        **kwargs,
    ).to(DTYPE)
    dense = dense_cls(cin, cout, kernel, **kwargs).to(DTYPE)
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(batch, cin, *([size] * dims), dtype=DTYPE)
    dy = torch.randn_like(dense(x))
    mask, idx = _channel_mask(dy, keep, groups, selection, seed + 1)
    assert idx.numel() == kept_channels(keep, cout, groups)
    torch.manual_seed(seed + 1)  # the layer draws the same random channels
    gx, gw, gb = _sparse_grads(sparse, x, dy)
    rx, rw, rb = reference_grads(dense, x, dy, mask)
    if not sparse_input_grad:
        rx = reference_grads(dense, x, dy, torch.ones_like(mask))[0]
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)
    if bias:
        torch.testing.assert_close(gb, rb)
    dropped = torch.ones(cout, dtype=torch.bool)
    dropped[idx] = False
    assert torch.all(gw[dropped] == 0)


conv_cases = st.fixed_dictionaries(
    {
        "groups": st.sampled_from([1, 1, 2, 3]),
        "cin_per_group": st.integers(1, 4),
        "cout_per_group": st.integers(1, 6),
        "kernel": st.integers(1, 3),
        "stride": st.integers(1, 2),
        "padding": st.sampled_from([0, 1, "same", "valid"]),
        "dilation": st.integers(1, 2),
        "bias": st.booleans(),
        "padding_mode": st.sampled_from(["zeros", "zeros", "reflect", "circular"]),
        "keep": st.sampled_from([0.05, 0.2, 0.5, 0.8, 0.99]),
        "selection": st.sampled_from(["topk", "random"]),
        "sparse_input_grad": st.booleans(),
        "batch": st.integers(1, 3),
        "seed": st.integers(0, 2**16),
    }
)


def _valid(case: dict) -> bool:
    if case["padding"] == "same" and case["stride"] != 1:
        return False  # torch forbids 'same' padding with strides
    return not (case["padding_mode"] != "zeros" and isinstance(case["padding"], str))


@settings(max_examples=60, deadline=None)
@given(case=conv_cases.filter(_valid))
def test_conv2d_matches_masked_reference(case: dict) -> None:
    _check_conv(SSPropConv2d, nn.Conv2d, 2, size=7, **case)


@settings(max_examples=25, deadline=None)
@given(case=conv_cases.filter(_valid))
def test_conv1d_matches_masked_reference(case: dict) -> None:
    _check_conv(SSPropConv1d, nn.Conv1d, 1, size=9, **case)


@settings(max_examples=10, deadline=None)
@given(case=conv_cases.filter(_valid))
def test_conv3d_matches_masked_reference(case: dict) -> None:
    _check_conv(SSPropConv3d, nn.Conv3d, 3, size=5, **case)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv(multiplier: int) -> None:
    case = dict(
        groups=8,
        cin_per_group=1,
        cout_per_group=multiplier,
        kernel=3,
        stride=1,
        padding=1,
        dilation=1,
        bias=True,
        padding_mode="zeros",
        keep=0.3,
        selection="topk",
        sparse_input_grad=True,
        batch=2,
        size=6,
        seed=3,
    )
    _check_conv(SSPropConv2d, nn.Conv2d, 2, **case)


@settings(max_examples=40, deadline=None)
@given(
    in_features=st.integers(1, 9),
    out_features=st.integers(1, 12),
    leading=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    bias=st.booleans(),
    keep=st.sampled_from([0.1, 0.25, 0.5, 0.9]),
    selection=st.sampled_from(["topk", "random"]),
    sparse_input_grad=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_matches_masked_reference(
    in_features, out_features, leading, bias, keep, selection, sparse_input_grad, seed
) -> None:
    torch.manual_seed(seed)
    sparse = SSPropLinear(
        in_features,
        out_features,
        bias=bias,
        keep=keep,
        selection=selection,
        sparse_input_grad=sparse_input_grad,
    ).to(DTYPE)
    dense = nn.Linear(in_features, out_features, bias=bias).to(DTYPE)
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(*leading, in_features, dtype=DTYPE)
    dy = torch.randn(*leading, out_features, dtype=DTYPE)
    mask, _ = _channel_mask(dy.reshape(-1, out_features), keep, 1, selection, seed + 1)
    mask = mask.view(-1)
    torch.manual_seed(seed + 1)
    gx, gw, gb = _sparse_grads(sparse, x, dy)
    rx, rw, rb = reference_grads(dense, x, dy, mask)
    if not sparse_input_grad:
        rx = reference_grads(dense, x, dy, torch.ones_like(mask))[0]
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)
    if bias:
        torch.testing.assert_close(gb, rb)


def test_topk_keeps_the_channels_with_largest_mean_abs_gradient() -> None:
    dy = torch.zeros(2, 5, 3, 3)
    for c, scale in enumerate([0.1, 5.0, 0.2, 3.0, -4.0]):
        dy[:, c] = scale
    assert select_channels(dy, 0.6).tolist() == [1, 3, 4]


def test_grouped_selection_keeps_the_same_count_in_every_group() -> None:
    dy = torch.randn(2, 12, 4, 4)
    idx = select_channels(dy, 0.5, groups=3)
    assert [int(((idx >= g * 4) & (idx < g * 4 + 4)).sum()) for g in range(3)] == [2, 2, 2]


def test_keep_one_equals_torch_bit_for_bit() -> None:
    torch.manual_seed(0)
    sparse = SSPropConv2d(4, 6, 3, padding=1, keep=1.0)
    dense = nn.Conv2d(4, 6, 3, padding=1)
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(2, 4, 8, 8)
    dy = torch.randn(2, 6, 8, 8)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            _sparse_grads(sparse, x, dy), reference_grads(dense, x, dy, 1.0), strict=True
        )
    )


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(1)
    layer = SSPropConv2d(8, 16, 3, padding=1, keep=0.25).to(DTYPE)
    x = torch.randn(4, 8, 6, 6, dtype=DTYPE)
    dy = torch.randn(4, 16, 6, 6, dtype=DTYPE)
    expected = _sparse_grads(layer, x, dy)
    layer = layer.to(memory_format=torch.channels_last)
    got = _sparse_grads(
        layer,
        x.contiguous(memory_format=torch.channels_last),
        dy.contiguous(memory_format=torch.channels_last),
    )
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_autocast_bfloat16_on_cpu() -> None:
    torch.manual_seed(2)
    layer = SSPropConv2d(4, 8, 3, padding=1, keep=0.5)
    linear = SSPropLinear(8, 3, keep=0.5)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        out = linear(y.mean((2, 3)))
    assert y.dtype == torch.bfloat16 and out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.dtype == torch.float32
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert int((layer.weight.grad.flatten(1).abs().sum(1) > 0).sum()) <= 4


def test_forward_equals_the_plain_layer_and_no_grad_skips_the_sparse_path() -> None:
    torch.manual_seed(3)
    sparse = SSPropConv2d(3, 5, 3, stride=2, padding="valid", keep=0.4)
    dense = nn.Conv2d(3, 5, 3, stride=2, padding="valid")
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(sparse(x), dense(x))
    with torch.no_grad():
        assert sparse(x).grad_fn is None


def test_sparse_backward_really_does_less_convolution_work() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    def backward_flops(keep: float) -> int:
        layer = SSPropConv2d(16, 32, 3, padding=1, bias=False, keep=keep)
        x = torch.randn(2, 16, 8, 8, requires_grad=True)
        y = layer(x)
        with FlopCounterMode(display=False) as counter:
            y.backward(torch.randn_like(y))
        return counter.get_total_flops()

    # 6 of 32 channels kept: grad_input and grad_weight both shrink to 6/32 of dense.
    assert backward_flops(0.2) * 32 == backward_flops(1.0) * 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep": 0.0}, "keep"),
        ({"keep": 1.5}, "keep"),
        ({"keep": float("nan")}, "keep"),
        ({"selection": "best"}, "selection"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SSPropConv2d(2, 2, 3, **kwargs)
    with pytest.raises(ValueError, match=message):
        SSPropLinear(2, 2, **kwargs)


def test_runs_on_the_meta_device() -> None:
    """Shape-only execution (the FLOP counter's) takes the sparse path without autocast."""
    layer = SSPropConv2d(4, 10, 3, keep=0.5).to("meta")
    x = torch.empty(2, 4, 6, 6, device="meta", requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and layer.weight.grad.is_meta


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scores_are_mean_abs_gradients_across_chunks(fmt: torch.memory_format, dtype) -> None:
    from ssprop_energy.sparse.selection import SCORE_CHUNK, channel_scores

    dy = torch.randn(33, 24, 40, 40).to(dtype).contiguous(memory_format=fmt)
    assert dy.numel() > 4 * SCORE_CHUNK  # several chunks, the last one short
    expected = dy.float().abs().mean(dim=(0, 2, 3))
    scores = channel_scores(dy)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
