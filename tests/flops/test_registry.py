"""The FLOP registry: user formulas, registration errors, what runs inside modules, is_conv."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ssprop_energy
from ssprop_energy import DropScheduler, SSPropConv2d
from ssprop_energy.flops import (
    Call,
    FlopCost,
    count_flops,
    crosscheck_flops,
    is_conv,
    register_flop_formula,
    training_flops,
    unregister_flop_formula,
)
from ssprop_energy.flops import formulas as fm
from tests.support.flops_zoo import FunctionalConv


class Gate(nn.Module):
    """A user module: ``x * sigmoid(proj(x))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.proj(x))


def gate_formula(call: Call) -> FlopCost:
    """Linear projection, sigmoid (4 per element) and the product, as a user would write it."""
    gate: Gate = call.target  # type: ignore[assignment]
    x = call.input
    rows, dim = x.numel() // gate.proj.in_features, gate.proj.in_features
    return FlopCost(
        forward=2 * rows * dim * dim + 5 * x.numel(),
        grad_input=2 * rows * dim * dim if x.requires_grad else 0,
        grad_weight=2 * rows * dim * dim,
    )


@pytest.fixture
def gate_registered() -> Iterator[None]:
    register_flop_formula(Gate)(gate_formula)
    yield
    unregister_flop_formula(Gate)


def test_user_module_formula_counts_it_whole(gate_registered: None) -> None:
    model = nn.Sequential(nn.Linear(8, 8), Gate(8))
    table = count_flops(model, (3, 8)).table
    assert table["type"].tolist() == ["Linear", "Gate"]  # its Linear and ops are inside it
    gate = table.set_index("module").loc["1"]
    assert gate["forward"] == 2 * 3 * 64 + 5 * 24
    assert gate["grad_input"] == gate["grad_weight"] == 2 * 3 * 64
    assert gate["params"] == 0  # its own parameters: the projection's are the Linear's
    frozen = count_flops(Gate(8).requires_grad_(False), (3, 8)).table.iloc[0]
    assert frozen["backward"] == 0  # its output needs no gradient: nothing flows back


def test_without_a_formula_the_module_is_counted_by_what_runs_inside() -> None:
    table = count_flops(Gate(8), (3, 8)).table.set_index("type")
    assert table.loc["Linear", "forward"] == 2 * 3 * 64
    assert table.loc["sigmoid", "forward"] == 4 * 24 and table.loc["mul", "forward"] == 24


def test_subclasses_use_the_nearest_registered_formula(gate_registered: None) -> None:
    class WideGate(Gate):
        pass

    assert count_flops(WideGate(4), (2, 4)).table["type"].tolist() == ["WideGate"]

    @register_flop_formula(WideGate)
    def wide(call: Call) -> FlopCost:
        return FlopCost(forward=7)

    try:
        assert count_flops(WideGate(4), (2, 4)).forward == 7
        assert count_flops(Gate(4), (2, 4)).forward == 2 * 2 * 16 + 5 * 8
    finally:
        unregister_flop_formula(WideGate)


def test_user_op_formula_replaces_a_skip() -> None:
    class Scan(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=-1)

    assert count_flops(Scan(), (2, 5)).skipped == ["Scan (functional cumsum)"]

    @register_flop_formula(torch.ops.aten.cumsum)
    def cumsum(call: Call) -> FlopCost:
        return FlopCost("scan", forward=call.out.numel())

    try:
        report = count_flops(Scan(), (2, 5))
        assert report.skipped == [] and report.table["type"].tolist() == ["scan"]
        assert report.forward == 10
    finally:
        unregister_flop_formula("cumsum")


def test_registration_errors_name_the_target(gate_registered: None) -> None:
    with pytest.raises(ValueError, match=r"test_registry\.Gate already has a FLOP formula"):
        register_flop_formula(Gate)(gate_formula)
    with pytest.raises(ValueError, match=r"torch\.nn\.modules\.conv\._ConvNd already has"):
        register_flop_formula(nn.modules.conv._ConvNd)(gate_formula)
    with pytest.raises(ValueError, match=r"aten\.relu already has a FLOP formula"):
        register_flop_formula("relu")(gate_formula)
    with pytest.raises(ValueError, match="no aten op named 'reluu'"):
        register_flop_formula("reluu")
    with pytest.raises(ValueError, match=r"expected an nn\.Module subclass"):
        register_flop_formula(F.relu)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected an nn\.Module subclass"):
        register_flop_formula(nn.Module)
    with pytest.raises(ValueError, match="name at least one"):
        register_flop_formula()
    with pytest.raises(ValueError, match="has no FLOP formula"):
        unregister_flop_formula(nn.Identity)
    # a failed registration registers nothing: Identity stays without formula
    with pytest.raises(ValueError, match="already has"):
        register_flop_formula(nn.Identity, Gate)(gate_formula)
    with pytest.raises(ValueError, match="has no FLOP formula"):
        unregister_flop_formula(nn.Identity)


def test_exported_from_the_package_root() -> None:
    assert ssprop_energy.register_flop_formula is register_flop_formula
    assert "register_flop_formula" in ssprop_energy.__all__


class EinsumAttention(nn.Module):
    """Attention written with einsum, a leaf module with no formula (no submodules)."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Parameter(torch.randn(dim, 3 * dim) / dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (x @ self.qkv).view(b, n, 3, self.heads, -1).unbind(2)
        scores = torch.einsum("bihd,bjhd->bhij", q, k).softmax(-1)
        return torch.einsum("bhij,bjhd->bihd", scores, v).reshape(b, n, d)


def test_einsum_attention_in_a_leaf_module_is_counted_exactly() -> None:
    model = nn.Sequential(nn.LayerNorm(8), EinsumAttention())
    report = count_flops(model, (2, 6, 8))
    assert report.skipped == []
    matmul = report.table.set_index(["module", "type"]).loc[("1", "matmul")]
    projection, scores = 2 * 12 * 8 * 24, 2 * (2 * 2) * 6 * 6 * 4
    assert matmul["forward"] == projection + 2 * scores
    table = crosscheck_flops(model, (2, 6, 8)).set_index("family")
    assert table.loc["mm", "counted"] > 0
    assert table["difference"].eq(0).all(), table.to_string()


class TwoHeads(nn.Module):
    """A model whose output is a dict (detection- or multi-task-style)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3)
        self.cls = nn.Linear(8, 4)
        self.box = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        y = F.relu(self.body(x))
        return {"logits": self.cls(y.mean((2, 3))), "boxes": [self.box(y)]}


def test_crosscheck_runs_backward_from_every_output_of_a_dict() -> None:
    table = crosscheck_flops(TwoHeads(), (2, 3, 8, 8)).set_index("family")
    assert table["difference"].eq(0).all(), table.to_string()
    box_weight_grad = 2 * 2 * 4 * 36 * 8  # reached only through the "boxes" output
    assert table.loc["convolution_backward", "counted"] > box_weight_grad
    assert table.loc["mm", "counted"] > 0


def test_hardsigmoid_module_and_function() -> None:
    class Functional(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.hardsigmoid(x)

    model = nn.Sequential(nn.Linear(4, 4), nn.Hardsigmoid(), Functional())
    report = count_flops(model, (3, 4))
    assert report.skipped == []
    table = report.table.set_index("type")
    assert table.loc["Hardsigmoid", ["forward", "grad_input"]].tolist() == [4 * 12, 2 * 12]
    assert table.loc["hardsigmoid", ["forward", "grad_input"]].tolist() == [4 * 12, 2 * 12]
    assert fm.ACTIVATION_COST["Hardsigmoid"] == fm.ACTIVATION_COST["Sigmoid"]


def test_is_conv_covers_layers_subclasses_and_functional_convolutions() -> None:
    class MyConv(nn.Conv2d):
        pass

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        SSPropConv2d(4, 4, 3, keep=0.5),
        MyConv(4, 4, 1),
        nn.ConvTranspose2d(4, 4, 2),
        nn.Flatten(),
        nn.Linear(4 * 16, 2),
    )
    table = count_flops(model, (1, 3, 7, 7)).table
    assert is_conv(table).tolist() == [True, True, True, True, False]
    functional = count_flops(FunctionalConv(), (2, 3, 16, 16)).table
    assert functional.loc[is_conv(functional), "type"].tolist() == ["convolution"]


def test_training_flops_counts_functional_convolutions() -> None:
    sched = DropScheduler("constant", 0.5, epochs=1)
    table = training_flops(FunctionalConv(), (2, 3, 16, 16), sched, epochs=1, steps_per_epoch=2)
    conv = count_flops(FunctionalConv(), (2, 3, 16, 16)).table
    per_step = int(conv.loc[is_conv(conv), "backward"].sum())
    assert per_step > 0
    assert table.iloc[0]["flops_backward_conv_dense"] == 2 * per_step
