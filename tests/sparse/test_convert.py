"""convert_model swaps layers in place, shares parameters and keeps outputs identical."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy import SSPropConv2d, SSPropLinear, convert_model, set_keep, sparse_layers
from ssprop_energy.models import build_model


def test_resnet18_round_trip_is_bit_identical_and_shares_parameters() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", width=16).eval()
    params = {n: p for n, p in model.named_parameters()}
    keys = list(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    before = model(x)
    returned = convert_model(model, keep=0.3, skip=("conv1",))
    assert returned is model
    assert torch.equal(model(x), before)
    assert list(model.state_dict()) == keys
    assert all(p is params[n] for n, p in model.named_parameters())
    converted = dict(sparse_layers(model))
    conv_names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert set(converted) == set(conv_names) - {"conv1"}
    assert not isinstance(model.conv1, SSPropConv2d) and isinstance(model.conv1, nn.Conv2d)
    assert all(m.keep == 0.3 for m in converted.values())
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_glob_skip_and_linear_layers() -> None:
    model = build_model("resnet18", width=8)
    convert_model(model, keep=0.5, layers=(nn.Conv2d, nn.Linear), skip=("layer1.*", "*shortcut*"))
    names = {n for n, _ in sparse_layers(model)}
    assert "fc" in names and isinstance(model.fc, SSPropLinear)
    assert not any(n.startswith("layer1.") or "shortcut" in n for n in names)
    assert "layer2.0.conv1" in names


def test_state_dict_loads_across_dense_and_sparse() -> None:
    dense = build_model("cnn", depth=2, width=4)
    sparse = convert_model(build_model("cnn", depth=2, width=4), keep=0.2)
    result = sparse.load_state_dict(dense.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(v, dense.state_dict()[k]) for k, v in sparse.state_dict().items())
    with torch.no_grad():
        sparse.fc.weight.mul_(2)
    dense.load_state_dict(sparse.state_dict())
    assert torch.equal(dense.fc.weight, sparse.fc.weight)


def test_shared_module_gets_one_twin_and_root_module_is_converted() -> None:
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    convert_model(model, keep=0.5)
    assert model[0] is model[2] and isinstance(model[0], SSPropConv2d)
    root = convert_model(nn.Conv2d(1, 2, 3), keep=0.5)
    assert isinstance(root, SSPropConv2d)


def test_user_subclasses_are_left_alone() -> None:
    class MyConv(nn.Conv2d):
        pass

    model = nn.Sequential(MyConv(1, 2, 3), nn.Conv2d(2, 2, 3))
    convert_model(model, keep=0.5)
    assert type(model[0]) is MyConv and isinstance(model[1], SSPropConv2d)


def test_set_keep_and_bad_arguments() -> None:
    model = convert_model(build_model("cnn", depth=2, width=4), keep=0.5)
    assert set_keep(model, 0.25) == 2
    assert all(m.keep == 0.25 for _, m in sparse_layers(model))
    with pytest.raises(ValueError, match="keep"):
        set_keep(model, 0)
    with pytest.raises(ValueError, match="keep"):
        convert_model(model, keep=1.01)
    with pytest.raises(ValueError, match="selection"):
        convert_model(model, selection="largest")
    with pytest.raises(ValueError, match="layers"):
        convert_model(model, layers=(nn.BatchNorm2d,))


class WeightsOnly(nn.Module):
    """Uses its Linear layers only through their weights, as torchvision's Swin attention."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        self.proj = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.qkv.weight, self.qkv.bias).chunk(3, dim=-1)
        return self.head(F.linear(q * k + v, self.proj.weight, self.proj.bias))


def test_layers_used_only_through_their_weights_warn_once() -> None:
    model = convert_model(WeightsOnly(), keep=0.5, layers=(nn.Linear,))
    with pytest.warns(UserWarning, match=r"converted layers proj, qkv got a weight gradient"):
        model(torch.randn(3, 4)).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.randn(3, 4)).sum().backward()  # once only
    assert not any(m._forward_pre_hooks for m in model.modules())  # the check is gone


def test_layers_called_as_modules_do_not_warn() -> None:
    model = convert_model(build_model("cnn", depth=2, width=4), keep=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert not any(m._forward_pre_hooks for m in model.modules())
