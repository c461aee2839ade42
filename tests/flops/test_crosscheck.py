"""The analytic counts agree exactly with what torch executes, dense and sparse."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssprop_energy import convert_model
from ssprop_energy.flops import crosscheck_flops, fvcore_crosscheck
from tests.support.flops_zoo import ZOO


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("keep", [None, 0.2, 0.55])
def test_zoo_agrees_exactly_with_flop_counter_mode(name: str, keep: float | None) -> None:
    torch.manual_seed(0)
    factory, shape = ZOO[name]
    model = factory()
    table = crosscheck_flops(model, shape, keep=keep)
    assert table["difference"].eq(0).all(), table.to_string()
    counted = table.set_index("family")["counted"]
    assert counted.sum() > 0  # not a vacuous agreement: torch counted the model's work
    assert (counted["convolution_backward"] > 0) == (counted["convolution"] > 0)  # all train


def test_sparse_backward_is_really_smaller() -> None:
    factory, shape = ZOO["resnet18"]
    model = factory()
    dense = crosscheck_flops(model, shape).set_index("family")
    sparse = crosscheck_flops(model, shape, keep=0.2).set_index("family")
    ratio = (
        sparse.loc["convolution_backward", "counted"] / dense.loc["convolution_backward", "counted"]
    )
    assert ratio == pytest.approx(0.2, abs=0.01)
    assert sparse.loc["convolution", "counted"] == dense.loc["convolution", "counted"]


def test_converted_ssprop_model_with_own_keeps() -> None:
    factory, shape = ZOO["resnet18"]
    model = convert_model(factory(), keep=0.3, layers=(nn.Conv2d, nn.Linear), skip=("conv1",))
    table = crosscheck_flops(model, shape)
    assert table["difference"].eq(0).all(), table.to_string()


@pytest.mark.parametrize("groups", [2, 4, 16])
def test_grouped_weight_gradient_correction(groups: int) -> None:
    """torch 2.13 counts the grouped weight gradient `groups` times; our reference divides."""
    from torch.utils.flop_counter import FlopCounterMode

    conv = nn.Conv2d(16, 16, 3, padding=1, groups=groups, bias=False)
    x = torch.randn(2, 16, 8, 8)
    y = conv(x)
    with FlopCounterMode(display=False) as raw:
        y.sum().backward()
    forward = 2 * 2 * 16 * 64 * (16 // groups) * 9
    assert raw.get_total_flops() == groups * forward  # the upstream overcount
    table = crosscheck_flops(conv, (2, 16, 8, 8)).set_index("family")
    assert table.loc["convolution_backward", "counted"] == forward  # grad_input is skipped
    assert table.loc["convolution_backward", "analytic"] == forward


@pytest.mark.parametrize("name", sorted(ZOO))
def test_fvcore_forward_agrees_times_two(name: str) -> None:
    factory, shape = ZOO[name]
    table = fvcore_crosscheck(factory(), shape).set_index("family")
    if name == "dilated":  # padding="same" runs aten::_convolution_mode, which fvcore skips
        conv = table.loc["convolution"]
        assert conv["fvcore_unsupported"] == "aten::_convolution_mode"
        assert conv["difference"] == 2 * (2 * 16 * 16 * 16 * 16 * 9)  # that layer, in full
        table = table.drop("convolution")
    assert table["difference"].eq(0).all(), table.to_string()


def test_crosscheck_leaves_mode_and_gradients_as_they_were() -> None:
    factory, shape = ZOO["cnn"]
    model = factory().train()
    model(torch.randn(shape)).sum().backward()
    before = {name: p.grad.clone() for name, p in model.named_parameters()}
    crosscheck_flops(model, shape)
    assert model.training
    assert all(torch.equal(p.grad, before[name]) for name, p in model.named_parameters())
