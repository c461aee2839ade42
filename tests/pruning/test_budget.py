"""The gates reach their target keep in an ordinary training budget under SGD with momentum,
Adam and AdamW, and say so when they do not (docs/pruning.md#training-budget)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy.methods import build_method
from ssprop_energy.methods.gated import GatedConfig
from ssprop_energy.pruning import (
    GateWarning,
    add_gates,
    gate_states,
    gate_warnings,
    polarization_loss,
    prune_gated,
)
from tests.support.residual_cnn import ResidualCNN


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(data.target)


def _train(model: nn.Module, opt: torch.optim.Optimizer, data, steps: int, weight=1.0) -> None:  # type: ignore[no-untyped-def]
    x, y = data
    model.train()
    for step in range(steps):
        batch = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        loss = F.cross_entropy(model(x[batch]), y[batch]) + weight * polarization_loss(model)
        opt.zero_grad()
        loss.backward()
        opt.step()


OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-3),
}
STEPS = 200  # docs/pruning.md#training-budget: Adam at 1e-3 needs about 150 steps here


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_gates_reach_their_target_in_a_few_hundred_steps(name: str, digits) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = add_gates(ResidualCNN(16), target_keep=0.5)
    _train(model, OPTIMIZERS[name](model.parameters()), digits, STEPS)
    (state,) = gate_states(model).itertuples()
    assert state.layer == "conv1" and state.channels == 16
    assert abs(state.kept / state.channels - 0.5) <= 0.05, state
    assert abs(state.distance) <= 0.05 and state.polarization <= 0.1, state
    with warnings.catch_warnings():  # nothing to warn about: pruning keeps the target
        warnings.simplefilter("error", GateWarning)
        small = prune_gated(model.eval())
    assert small.conv1.out_channels == 8


def test_a_budget_too_short_warns_with_what_to_change(digits) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = add_gates(ResidualCNN(16), target_keep=0.5)
    _train(model, torch.optim.Adam(model.parameters(), lr=1e-3), digits, 20)  # of 200
    states = gate_states(model)
    (state,) = states.itertuples()
    assert state.target == 0.5 and state.distance == state.kept / 16 - 0.5 > 0.05
    (line,) = gate_warnings(states)
    above = f"{state.kept} of 16 kept ({state.kept / 16:.2f}), {state.distance:.2f} above"
    assert line.startswith(f"gated layer conv1: {above} the target 0.5 at pruning; train the")
    assert "train the gates longer before pruning" in line
    with pytest.warns(GateWarning, match=re.escape(f"gated layer conv1: {above}")):
        prune_gated(model.eval())


def test_the_gated_method_warns_and_notes_a_group_far_from_its_target(digits) -> None:  # type: ignore[no-untyped-def]
    method = build_method(GatedConfig(target_keep=0.5), epochs=2)
    model = method.prepare(ResidualCNN(16))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = digits
    for _ in range(3):
        loss = F.cross_entropy(model(x[:64]), y[:64]) + method.extra_loss(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with pytest.warns(GateWarning, match="gated layer conv1: 16 of 16 kept"):
        method.finalize(model)
    (note,) = method.notes()
    assert note.startswith("gated layer conv1: 16 of 16 kept") and "prune_at_epoch" in note
    assert "distance" in method.tables()["gates.csv"]


def test_unpolarized_gates_are_named() -> None:
    model = add_gates(ResidualCNN(16), target_keep=0.5, level="channel")
    (gate,) = [m.gate for m in model.modules() if hasattr(m, "gate")]
    gate.open_fraction.copy_(torch.tensor([0.6] * 8 + [0.4] * 8))  # keeps 8: on target
    (line,) = gate_warnings(gate_states(model))
    assert line.startswith("gated layer conv1: not polarized (polarization 0.80 > 0.1: some")
    assert "kept" not in line
