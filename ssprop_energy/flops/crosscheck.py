"""Cross-checks of the analytic counts against what really runs.

``crosscheck_flops`` executes one forward and backward pass under torch's
``FlopCounterMode`` and compares, per aten op family, with ``count_flops`` on the same model.
Two corrections are applied to the reference, both registered through ``custom_mapping``:

- torch 2.13 counts the weight gradient of a grouped convolution ``groups`` times over (its
  formula transposes the input to batch ``C_in`` and forgets the groups); we divide it out;
- torch 2.13 has no formula for the CPU fused attention kernels
  (``_scaled_dot_product_flash_attention_for_cpu`` and its backward), so on CPU it counts 0;
  we register torch's own formulas for the other fused kernels for them.

Attention is the family of the path that really ran: ``nn.MultiheadAttention`` with
``need_weights=True`` (its default) runs batched matmuls (the ``mm`` family, an
``attention_math`` row in the analytic table), with ``need_weights=False`` and
``F.scaled_dot_product_attention`` a fused kernel (``attention``).

``fvcore_crosscheck`` compares forward counts with fvcore's ``FlopCountAnalysis`` (which
counts one multiply-accumulate as one flop, so its numbers are doubled).
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils import flop_counter as tfc

from ..sparse import SSPropMixin, convert_model
from .counter import InputSpec, _to_tensors, count_flops, is_conv, type_names

aten = torch.ops.aten
FAMILIES = {
    "convolution": (aten.convolution, aten._convolution),
    "convolution_backward": (aten.convolution_backward,),
    "mm": (aten.mm, aten.addmm, aten.bmm, aten.baddbmm),
    "attention": (
        aten._scaled_dot_product_flash_attention_for_cpu,
        aten._scaled_dot_product_flash_attention_for_cpu_backward,
        aten._scaled_dot_product_efficient_attention,
        aten._scaled_dot_product_efficient_attention_backward,
        aten._scaled_dot_product_flash_attention,
        aten._scaled_dot_product_flash_attention_backward,
        aten._scaled_dot_product_cudnn_attention,
        aten._scaled_dot_product_cudnn_attention_backward,
    ),
}
CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _grouped_conv_backward(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,  # type: ignore[no-untyped-def]
    _dilation,
    transposed,
    _output_padding,
    groups,
    output_mask,
    out_shape,
    **kwargs,
) -> int:
    """torch's convolution_backward formula with the grouped weight gradient divided by g."""
    total = 0
    if output_mask[0]:
        total += tfc.conv_flop_count(grad_out_shape, w_shape, x_shape, not transposed)
    if output_mask[1]:

        def t(shape: Any) -> list[int]:
            return [shape[1], shape[0], *list(shape[2:])]

        if transposed:
            weight = tfc.conv_flop_count(t(grad_out_shape), t(x_shape), t(w_shape), False)
        else:
            weight = tfc.conv_flop_count(t(x_shape), t(grad_out_shape), t(w_shape), False)
        total += weight // groups
    return total


def _cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
    return tfc.sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
    return tfc.sdpa_backward_flop_count(grad_out, query, key, value)


CORRECTIONS = {  # FlopCounterMode turns tensors into shapes before calling these
    aten.convolution_backward: _grouped_conv_backward,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
}


def _with_keep(model: nn.Module, keep: float | None) -> nn.Module:
    """A copy of ``model`` whose convolutions run ssProp at ``keep`` (or the model itself)."""
    if keep is None:
        return model
    twin = convert_model(copy.deepcopy(model), keep=keep, layers=CONV_TYPES)
    for _, m in twin.named_modules():
        if isinstance(m, SSPropMixin) and isinstance(m, CONV_TYPES):
            m.set_keep(keep)
    return twin


def _is_mm(table: pd.DataFrame) -> pd.Series:
    """Rows that run as matmuls: linear layers, attention projections, ``x @ w`` and the
    unfused attention."""
    names = type_names(nn.Linear, nn.MultiheadAttention) | {"matmul", "attention_math"}
    return table["type"].isin(names)


def _tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in a model's output (a tensor, or dicts, lists and tuples of them)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, tuple | list):
        return [t for item in value for t in _tensors(item)]
    return []


def _families(table: pd.DataFrame) -> dict[str, int]:
    """The analytic counts of a ``count_flops`` table, summed per aten op family."""
    conv, mm = is_conv(table), _is_mm(table)
    attention = table["type"].eq("attention")
    return {
        "convolution": int(table.loc[conv, "forward"].sum()),
        "convolution_backward": int(table.loc[conv, ["grad_input", "grad_weight"]].sum().sum()),
        "mm": int(table.loc[mm, ["forward", "grad_input", "grad_weight"]].sum().sum()),
        "attention": int(table.loc[attention, ["forward", "grad_input"]].sum().sum()),
    }


def crosscheck_flops(
    model: nn.Module, inputs: InputSpec, keep: float | None = None
) -> pd.DataFrame:
    """Analytic vs executed FLOPs per aten op family, for one forward + backward pass.

    Returns a DataFrame (``family``, ``analytic``, ``counted``, ``difference``); any
    difference is shown, never hidden. The backward pass starts from every output tensor that
    needs a gradient (a model may return a tensor, or a dict, list or tuple of them), as the
    analytic count assumes. The model is run on random inputs on its own device;
    with ``keep`` a converted copy runs instead. The model's mode and gradients are left as
    they were.
    """
    run = _with_keep(model, keep)
    device = next((p.device for p in run.parameters()), torch.device("cpu"))
    shapes = [t.shape for t in _to_tensors(run, inputs)]
    real = [torch.randn(s, device=device) for s in shapes]
    was_training = {m: m.training for m in run.modules()}
    grads = {p: p.grad for p in run.parameters()}  # the user's gradients, put back after
    run.eval()  # the analytic pass runs in eval mode too: same ops, no running-stat updates
    try:
        for p in grads:
            p.grad = None
        with tfc.FlopCounterMode(display=False, custom_mapping=CORRECTIONS) as counter:
            outputs = [t for t in _tensors(run(*real)) if t.requires_grad]
            torch.stack([t.float().sum() for t in outputs]).sum().backward()
    finally:
        for m, flag in was_training.items():
            m.train(flag)
        for p, grad in grads.items():
            p.grad = grad
    counted_ops = counter.get_flop_counts().get("Global", {})
    counted = {
        family: int(sum(v for op, v in counted_ops.items() if op in ops))
        for family, ops in FAMILIES.items()
    }
    analytic = _families(
        count_flops(run, tuple(torch.empty(s, device="meta") for s in shapes)).table
    )
    rows = [
        {
            "family": f,
            "analytic": analytic[f],
            "counted": counted[f],
            "difference": analytic[f] - counted[f],
        }
        for f in FAMILIES
    ]
    return pd.DataFrame(rows)


def fvcore_crosscheck(model: nn.Module, inputs: InputSpec) -> pd.DataFrame:
    """Forward FLOPs of convolutions and matmuls: ours vs fvcore's MACs times two.

    Columns ``family``, ``ours``, ``fvcore_x2``, ``difference`` and ``fvcore_unsupported``:
    the ops of that family fvcore saw but could not count (it skips them; for example
    ``aten::_convolution_mode``, the convolution with ``padding="same"``), which explain any
    difference.
    """
    from fvcore.nn import FlopCountAnalysis

    shapes = [t.shape for t in _to_tensors(model, inputs)]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    real = tuple(torch.randn(s, device=device) for s in shapes)
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        analysis = FlopCountAnalysis(model, real)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        by_op = analysis.by_operator()
        unsupported = sorted(analysis.unsupported_ops())
    finally:
        for m, flag in was_training.items():
            m.train(flag)
    table = count_flops(model, tuple(torch.empty(s, device="meta") for s in shapes)).table
    conv, mm = is_conv(table), _is_mm(table)
    linear_ops = ("linear", "addmm", "matmul", "mm", "bmm", "einsum")
    rows = [
        {
            "family": "convolution",
            "ours": int(table.loc[conv, "forward"].sum()),
            "fvcore_x2": 2 * int(by_op.get("conv", 0)),
            "fvcore_unsupported": ", ".join(op for op in unsupported if "conv" in op),
        },
        {
            "family": "linear",
            "ours": int(table.loc[mm, "forward"].sum()),
            "fvcore_x2": 2 * int(sum(by_op.get(op, 0) for op in linear_ops)),
            "fvcore_unsupported": ", ".join(
                op for op in unsupported if op.split("::")[-1] in linear_ops
            ),
        },
    ]
    frame = pd.DataFrame(rows)
    frame["difference"] = frame["ours"] - frame["fvcore_x2"]
    return frame[["family", "ours", "fvcore_x2", "difference", "fvcore_unsupported"]]
