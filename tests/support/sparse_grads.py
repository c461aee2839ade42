"""The reference the sparse gradient tests compare with (on CPU and on CUDA): ordinary
autograd of the dense layer on the masked output gradient."""

from __future__ import annotations

import torch
from torch import nn


def reference_grads(dense: nn.Module, x: torch.Tensor, dy: torch.Tensor, mask: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    dense.zero_grad()
    dense(x).backward(dy * mask)
    bias = dense.bias.grad if dense.bias is not None else None
    return x.grad, dense.weight.grad, bias
