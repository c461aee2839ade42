"""Gates, the polarizing loss and prune_gated on plain, grouped and residual models."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy.flops import count_flops, crosscheck_flops
from ssprop_energy.models import build_model
from ssprop_energy.pruning import (
    add_gates,
    gate_states,
    gates,
    polarization_loss,
    prune_gated,
)


class Grouped(nn.Module):
    """A MobileNet-like stack: plain, depthwise, plain, a grouped conv (not gated), head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.dw_bn = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.grouped = nn.Conv2d(12, 12, 3, padding=1, groups=2)
        self.last = nn.Conv2d(12, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.dw_bn(self.dw(F.relu(self.bn(self.stem(x))))))
        x = self.last(self.grouped(torch.sigmoid(self.pw(x))))
        return self.fc(x.mean((2, 3)))


def _random_consensus(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for i, gate in enumerate(gates(model).values()):
        if gate.units == 1:  # blocks: every other one closed
            gate.open_fraction.fill_(i % 2)
            continue
        gate.open_fraction.copy_(torch.rand(gate.units, generator=g))
        gate.open_fraction[0] = 1.0  # at least one channel open per layer


def _trained_a_bit(model: nn.Module, x: torch.Tensor) -> None:
    """Running statistics that are not the defaults, so pruning must carry them over."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)


MODELS = {
    "plain": (lambda: build_model("cnn", in_channels=1, depth=4, width=8), "channel"),
    "grouped": (Grouped, "channel"),
    "residual-channel": (lambda: build_model("resnet18", in_channels=1, width=4), "channel"),
    "residual-block": (lambda: build_model("resnet18", in_channels=1, width=4), "block"),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_pruned_model_computes_what_the_gated_model_computes(name: str) -> None:
    torch.manual_seed(0)
    factory, level = MODELS[name]
    model = add_gates(factory(), target_keep=0.5, level=level)
    x = torch.randn(6, 1, 16, 16)
    _trained_a_bit(model, x)
    _random_consensus(model)
    model.eval()
    pruned = prune_gated(model)
    assert not gates(pruned)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), rtol=1e-5, atol=1e-5)
    assert not pruned.training


def test_which_layers_are_gated() -> None:
    model = add_gates(Grouped())
    # stem's channels pass BN, ReLU, the depthwise conv and its BN to pw; pw's output enters
    # a grouped conv, grouped's a conv whose output is pooled into the head: not gated.
    assert list(gates(model)) == ["stem"]
    blocks = add_gates(build_model("resnet18", in_channels=1, width=4), level="block")
    assert list(gates(blocks)) == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]


def test_pruning_keeps_requires_grad_and_removes_closed_channels_everywhere() -> None:
    model = add_gates(build_model("cnn", in_channels=1, depth=3, width=8))
    model.features[0].weight.requires_grad_(False)
    for gate in gates(model).values():
        gate.open_fraction.copy_(torch.arange(gate.units) % 2)  # every other unit open
    pruned = prune_gated(model)
    conv0, bn0, conv1 = pruned.features[0], pruned.features[1], pruned.features[3]
    assert (conv0.out_channels, bn0.num_features, conv1.in_channels) == (4, 4, 4)
    assert not conv0.weight.requires_grad and conv1.weight.requires_grad
    assert list(gate_states(model)["kept"]) == [4, 4]


def test_gates_polarize_to_the_target_keep() -> None:
    """Digits 8x8, a 3-layer CNN: every gate ends always open or always closed, and each
    layer keeps its target fraction."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = add_gates(build_model("cnn", in_channels=1, depth=3, width=8), target_keep=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    for step in range(240):
        idx = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        loss = F.cross_entropy(model(x[idx]), y[idx]) + 0.3 * polarization_loss(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        model(x[:512])  # records each gate's scores on 512 inputs
    for name, gate in gates(model).items():
        assert gate.scores is not None
        opened = (gate.scores > 0).float().mean(0)
        assert set(opened.tolist()) <= {0.0, 1.0}, name
        assert abs(opened.mean().item() - 0.5) <= 0.05, name
    states = gate_states(model)
    assert (states["kept"] / states["channels"] - 0.5).abs().le(0.05).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_keep": 0.0}, "target_keep: must be in (0, 1], got 0.0"),
        ({"target_keep": 1.5}, "target_keep: must be in (0, 1], got 1.5"),
        ({"level": "layer"}, "level: must be one of channel, block, got 'layer'"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        add_gates(build_model("cnn", in_channels=1, depth=2, width=4), **kwargs)
    assert str(info.value) == message


def test_models_that_cannot_be_gated() -> None:
    with pytest.raises(ValueError, match="no channel of the model can be gated"):
        add_gates(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(2)))
    with pytest.raises(ValueError, match="already has gates"):
        add_gates(add_gates(build_model("cnn", in_channels=1, depth=2, width=4)))

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) if x.sum() > 0 else x

    with pytest.raises(ValueError, match="cannot trace the model to place gates"):
        add_gates(Branchy())


def test_copies_of_a_model_in_training() -> None:
    model = add_gates(build_model("cnn", in_channels=1, depth=3, width=4)).train()
    polarization_loss(model)  # no forward yet: zero, no error
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert polarization_loss(model).item() > 0
    copy.deepcopy(model)  # the last batch's scores (part of a graph) are not copied


@pytest.mark.parametrize("name", list(MODELS))
def test_flops_are_counted_as_they_run(name: str) -> None:
    factory, level = MODELS[name]
    torch.manual_seed(0)
    plain = factory()
    gated = add_gates(copy.deepcopy(plain), level=level)
    _random_consensus(gated)
    pruned = prune_gated(gated)
    shape = (2, 1, 16, 16)
    assert count_flops(gated, shape).forward > count_flops(plain, shape).forward
    assert count_flops(pruned, shape).forward < count_flops(plain, shape).forward
    check = crosscheck_flops(pruned, shape)
    assert check["difference"].eq(0).all(), check


def test_a_layer_never_loses_all_its_channels() -> None:
    model = add_gates(build_model("cnn", in_channels=1, depth=3, width=4)).eval()
    for gate in gates(model).values():
        gate.open_fraction.fill_(0.1)
        gate.open_fraction[2] = 0.3
    x = torch.randn(2, 1, 8, 8)
    pruned = prune_gated(model)
    assert pruned.features[0].out_channels == 1
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x))
