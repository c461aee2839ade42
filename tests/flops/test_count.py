"""count_flops: formulas, keep handling, skipped modules, the model left untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssprop_energy import DropScheduler, SSPropConv2d, convert_model
from ssprop_energy.errors import UserError
from ssprop_energy.flops import count_flops, training_flops
from ssprop_energy.flops import formulas as fm
from ssprop_energy.harness.models import build_model


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


def test_resnet50_counts_in_under_a_second() -> None:
    import time

    model = build_model("resnet50")
    start = time.perf_counter()
    report = count_flops(model, (1, 3, 224, 224), keep=0.2)
    assert time.perf_counter() - start < 1.0
    assert report.backward > 0


def test_unknown_layers_are_listed_not_guessed() -> None:
    class Mystery(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    model = nn.Sequential(nn.Conv2d(1, 2, 3), Mystery(), nn.Dropout())
    report = count_flops(model, (1, 1, 5, 5))
    assert report.skipped == ["1 (Mystery)"]
    assert "Mystery" in str(report)


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
