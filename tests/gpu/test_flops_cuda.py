"""The FLOP counter's counts of models on CUDA equal what FlopCounterMode counts there
(CUDA picks other kernels than the CPU: cuDNN convolutions, fused attention)."""

from __future__ import annotations

import pytest
import torch

from ssprop_energy.flops import crosscheck_flops
from tests.support.flops_zoo import ZOO

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("keep", [None, 0.2])
def test_zoo_on_cuda_agrees_exactly_with_flop_counter_mode(name: str, keep: float | None) -> None:
    torch.manual_seed(0)
    factory, shape = ZOO[name]
    model = factory().cuda()  # type: ignore[operator]
    table = crosscheck_flops(model, shape, keep=keep)
    assert table["difference"].eq(0).all(), table.to_string()
    assert table["counted"].sum() > 0
