"""count_flops: formulas, keep handling, skipped modules, the model left untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy import DropScheduler, SSPropConv2d, convert_model, sparse_layers
from ssprop_energy.errors import UserError
from ssprop_energy.flops import count_flops, count_flops_at, training_flops
from ssprop_energy.flops import formulas as fm
from ssprop_energy.models import build_model


def test_conv_formulas_by_hand() -> None:
    # N=2, C_in=3, C_out=8, 3x3 kernel, 5x5 output
    assert fm.conv_forward(2, 3, 8, 1, (3, 3), (5, 5)) == 2 * 2 * 8 * 25 * 3 * 9
    assert fm.conv_grad_weight(2, 3, 2, 1, (3, 3), (5, 5)) == 2 * 2 * 2 * 25 * 3 * 9
    assert fm.conv_grad_bias(2, 8, (5, 5)) == 400
    assert fm.conv_transpose_forward(1, 4, 6, 2, (2, 2), (3, 3)) == 2 * 4 * 9 * 3 * 4
    assert fm.linear_forward(6, 10, 4) == 480
    assert fm.sdpa_forward(2, 5, 7, 4, 4) == 2 * 2 * 5 * 7 * 8


def test_report_table_and_totals() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 4)
    )
    report = count_flops(model, (2, 3, 4, 4))
    table = report.table.set_index("module")
    conv = 2 * 2 * 8 * 16 * 3 * 9
    assert table.loc["0", "forward"] == conv
    assert table.loc["0", "grad_input"] == 0  # the input needs no gradient
    assert table.loc["0", "grad_weight"] == conv and table.loc["0", "grad_bias"] == 2 * 8 * 16
    assert table.loc["3", "grad_input"] == 2 * 2 * 128 * 4
    assert report.forward == int(report.table["forward"].sum())
    assert report.total == report.forward + report.backward + report.selection
    assert list(report.table.columns)[:10] == [
        "module",
        "type",
        "forward",
        "grad_input",
        "grad_weight",
        "grad_bias",
        "backward",
        "selection",
        "total",
        "params",
    ]
    with_grad = count_flops(model, (2, 3, 4, 4), input_requires_grad=True)
    assert with_grad.table.set_index("module").loc["0", "grad_input"] == conv
    assert "forward" in str(report)


def test_keep_for_every_conv_and_own_keep() -> None:
    model = build_model("cnn", width=20)
    dense = count_flops(model, (4, 1, 16, 16))
    hypothetical = count_flops(model, (4, 1, 16, 16), keep=0.2)
    assert hypothetical.forward == dense.forward and hypothetical.backward < dense.backward
    convert_model(model, keep=0.2)
    own = count_flops(model, (4, 1, 16, 16))
    assert own.backward == hypothetical.backward
    assert own.selection > 0 and dense.selection == 0


def test_inputs_as_tensor_tuple_or_shape_and_model_untouched() -> None:
    model = build_model("resnet18", width=8)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = count_flops(model, (2, 3, 8, 8))
    b = count_flops(model, torch.randn(2, 3, 8, 8))
    c = count_flops(model, (torch.randn(2, 3, 8, 8),))
    assert a.total == b.total == c.total
    assert model.training and all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and not model.conv1._forward_pre_hooks


def test_resnet50_at_224_sparse_backward_is_smaller() -> None:
    model = build_model("resnet50")  # its counting speed: benchmarks/count_speed.py
    report = count_flops(model, (1, 3, 224, 224), keep=0.2)
    assert 0 < report.backward < count_flops(model, (1, 3, 224, 224)).backward


def test_ops_inside_a_module_without_formula_are_counted() -> None:
    class Mystery(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    model = nn.Sequential(nn.Conv2d(1, 2, 3), Mystery(), nn.Dropout())
    report = count_flops(model, (1, 1, 5, 5))
    assert report.skipped == []
    mul = report.table.set_index(["module", "type"]).loc[("1", "mul")]
    assert mul[["forward", "grad_input"]].tolist() == [2 * 9, 2 * 9]  # one product, x needs it


def test_only_ops_without_formula_are_listed() -> None:
    class Mystery(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x * 2, dim=-1)

    model = nn.Sequential(nn.Conv2d(1, 2, 3), Mystery())
    report = count_flops(model, (1, 1, 5, 5))
    assert report.skipped == ["1 (functional cumsum)"]
    assert "not counted (no formula): 1 (functional cumsum)" in str(report)
    assert report.table["type"].tolist() == ["Conv2d", "mul"]


def test_bad_input_names_the_problem() -> None:
    model = build_model("cnn")
    with pytest.raises(UserError, match="inputs: shape 2x3x8x8 does not fit the model"):
        count_flops(model, (2, 3, 8, 8))
    with pytest.raises(ValueError, match="keep"):
        count_flops(model, (2, 1, 8, 8), keep=0)


def test_training_flops_keep_02_interleaved_saves_40_percent_of_conv_backward() -> None:
    model = convert_model(build_model("cnn", width=20, depth=4), keep=1.0)
    sched = DropScheduler("constant", 0.2, epochs=6, interleave=True)
    table = training_flops(model, (8, 1, 16, 16), sched, epochs=6, steps_per_epoch=5, eval_steps=2)
    total = table[table.epoch == "total"].iloc[0]
    assert total["conv_backward_saving_pct"] == pytest.approx(40.0)
    assert 0 < total["backward_saving_pct"] < 40.0  # norms and the head stay dense
    assert total["flops_eval"] == 6 * 2 * table.iloc[0]["flops_forward"] // 5
    assert table.iloc[0]["mean_keep"] == 1.0 and table.iloc[1]["mean_keep"] == 0.2


def test_by_iteration_schedule() -> None:
    model = convert_model(build_model("cnn", width=20), keep=1.0)
    sched = DropScheduler("bar", 1.0, 0.2, epochs=1, by="iteration", period=4)
    table = training_flops(model, (2, 1, 8, 8), sched, epochs=1, steps_per_epoch=4)
    assert table.iloc[0]["mean_keep"] == pytest.approx(0.6)
    assert table.iloc[0]["conv_backward_saving_pct"] == pytest.approx(40.0)


def test_sparse_input_grad_false_keeps_grad_input_dense() -> None:
    layer = SSPropConv2d(20, 20, 3, padding=1, keep=0.2, sparse_input_grad=False)
    table = count_flops(layer, (2, 20, 6, 6), input_requires_grad=True).table.iloc[0]
    assert table["grad_input"] == table["forward"] and table["grad_weight"] == table["forward"] // 5


class _Block(nn.Module):
    """A residual block whose add and ReLU are functional (no module of their own)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv(x))


def test_functional_ops_between_layers_are_counted() -> None:
    report = count_flops(nn.Sequential(_Block(), nn.MaxPool2d(2)), (2, 4, 6, 6))
    table = report.table.set_index(["module", "type"])
    numel = 2 * 4 * 6 * 6
    assert table.loc[("0", "add"), "forward"] == numel
    assert table.loc[("0", "add"), "backward"] == 0  # the gradient passes through
    assert table.loc[("0", "relu"), ["forward", "grad_input"]].tolist() == [numel, numel]
    # MaxPool2d(2): 72 outputs, 3 comparisons each; the gradient is routed once per output
    assert table.loc[("1", "MaxPool2d"), ["forward", "grad_input"]].tolist() == [3 * 72, 72]
    assert report.skipped == []


def test_unknown_functional_op_is_listed() -> None:
    class Glue(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(self.lin(x), dim=-1)

    report = count_flops(Glue(), (2, 3))
    assert report.skipped == ["Glue (functional cumsum)"]
    assert "not counted (no formula): Glue (functional cumsum)" in str(report)


def test_model_the_meta_device_cannot_run_is_traced_on_its_device() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            steps = int(x.shape[-1] + x.sum().item() * 0)  # .item() has no meta kernel
            return self.conv(x)[..., :steps]

    model = DataDependent()
    report = count_flops(model, (2, 3, 8, 8), keep=0.5)
    assert report.traced_on == "cpu" and "running the model on cpu" in str(report)
    expected = count_flops(nn.Sequential(nn.Conv2d(3, 8, 3)), (2, 3, 8, 8), keep=0.5)
    conv = report.table[report.table.type == "Conv2d"]
    assert conv[["forward", "backward", "selection"]].values.tolist() == (
        expected.table[["forward", "backward", "selection"]].values.tolist()
    )
    assert all(p.device.type == "cpu" and p.grad is None for p in model.parameters())


def test_the_training_step_is_counted_even_under_no_grad() -> None:
    model = convert_model(build_model("cnn", width=20), keep=0.2)
    outside = count_flops(model, (4, 1, 16, 16))
    with torch.no_grad():
        inside = count_flops(model, (4, 1, 16, 16))
    assert inside.backward == outside.backward and inside.selection == outside.selection > 0


def test_random_selection_costs_no_scoring() -> None:
    layer = SSPropConv2d(10, 64, 3, keep=0.5, selection="random")
    report = count_flops(layer, (2, 10, 5, 5))
    assert report.selection == 0
    assert report.table.iloc[0]["grad_weight"] == report.table.iloc[0]["forward"] // 2
    topk = SSPropConv2d(10, 64, 3, keep=0.5)
    assert count_flops(topk, (2, 10, 5, 5)).selection == 2 * 2 * 64 * 3 * 3  # |dy| and sum


def test_count_flops_at_reads_keep_never_writes() -> None:
    model = convert_model(build_model("cnn", width=20), keep=0.7)
    writes: list[float] = []
    for _, layer in sparse_layers(model):
        layer.set_keep = writes.append  # type: ignore[method-assign]
    at = count_flops_at(model, (4, 1, 16, 16), 0.2)
    assert writes == [] and all(m.keep == 0.7 for _, m in sparse_layers(model))
    assert at.backward == count_flops(model, (4, 1, 16, 16), keep=0.2).backward
    assert at.backward < count_flops(model, (4, 1, 16, 16)).backward


def test_frozen_layers_have_no_backward() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    model[0].requires_grad_(False)
    table = count_flops(model, (1, 3, 7, 7), keep=0.5).table.set_index("module")
    assert table.loc[["0", "1"], ["backward", "selection"]].values.sum() == 0
    assert table.loc["2", "grad_input"] == 0 and table.loc["2", "grad_weight"] > 0
    assert table.loc["2", "selection"] > 0


def test_shape_with_a_zero_size_names_the_problem() -> None:
    with pytest.raises(UserError, match="inputs: every size of a shape must be >= 1"):
        count_flops(build_model("cnn"), (0, 1, 8, 8))


def test_embedding_dropout_and_elementwise_math() -> None:
    class Embed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.drop = nn.Dropout(0.1)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return torch.exp(self.drop(self.emb(tokens)))

    report = count_flops(Embed(), torch.zeros(3, 5, dtype=torch.long))
    table = report.table.set_index("type")
    numel = 3 * 5 * 8
    assert table.loc["Embedding", ["forward", "grad_weight"]].tolist() == [0, numel]
    assert table.loc["Dropout", ["forward", "grad_input"]].tolist() == [numel, numel]
    assert table.loc["math", ["forward", "grad_input"]].tolist() == [numel, 2 * numel]
    assert report.skipped == []


def test_attention_inside_a_module_without_formula_is_counted() -> None:
    class Attend(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(x, x, x) * 2

    report = count_flops(nn.Sequential(nn.Linear(4, 4), Attend()), (2, 3, 5, 4))
    assert report.skipped == []
    table = report.table.set_index(["module", "type"])
    assert report.table["type"].tolist() == ["Linear", "attention", "mul"]
    attention = table.loc[("1", "attention")]
    assert attention["forward"] == fm.sdpa_forward(6, 5, 5, 4, 4)
    assert attention["grad_input"] == fm.sdpa_backward(6, 5, 5, 4, 4)
