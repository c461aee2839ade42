"""Drop-in ssProp layers: subclasses of torch's Conv1d/2d/3d and Linear.

Forward is the ordinary layer. While gradients are recorded and ``keep < 1`` the backward
pass keeps only the top-``keep`` output-gradient channels (see :mod:`.functional`).
``keep == 1.0`` runs torch's own layer, so its gradients are torch's, bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .functional import sparse_conv, sparse_linear
from .selection import ScoreReduce, check_keep, check_selection


class SSPropMixin:
    """Keep, selection and input-gradient options shared by every ssProp layer.

    Mixed in before a torch layer class: the constructor takes that layer's arguments plus
    the keyword-only ssProp options.
    """

    keep: float
    selection: str
    sparse_input_grad: bool
    score_reduce: ScoreReduce | None = None
    """Set by a distributed run's ``sync_selection``: the channel scores' all-reduce."""

    def __init__(
        self,
        *args: Any,
        keep: float = 1.0,
        selection: str = "topk",
        sparse_input_grad: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._init_sparse(keep, selection, sparse_input_grad)

    def _init_sparse(self, keep: float, selection: str, sparse_input_grad: bool) -> None:
        self.keep = check_keep(keep)
        self.selection = check_selection(selection)
        self.sparse_input_grad = bool(sparse_input_grad)

    def set_keep(self, keep: float) -> None:
        """Set the fraction of output-gradient channels kept in backward (0 < keep <= 1)."""
        self.keep = check_keep(keep)

    def _sparse_active(self) -> bool:
        return self.keep < 1.0 and torch.is_grad_enabled()

    def extra_repr(self) -> str:
        base: str = super().extra_repr()  # type: ignore[misc]
        return (
            f"{base}, keep={self.keep}, selection={self.selection!r}, "
            f"sparse_input_grad={self.sparse_input_grad}"
        )


class _SSPropConvNd(SSPropMixin):
    """Forward of the ssProp convolutions (shared by 1-d, 2-d and 3-d)."""

    def _explicit_padding(self, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """Turn padding modes and string padding into a padded input plus integer padding."""
        conv: Any = self
        dims = x.dim() - 2
        if conv.padding_mode != "zeros":
            x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            return x, [0] * dims
        if conv.padding == "valid":
            return x, [0] * dims
        if conv.padding == "same":
            left, extra = [], []
            for d, k in zip(conv.dilation, conv.kernel_size, strict=True):
                total = d * (k - 1)
                left.append(total // 2)
                extra.append(total - 2 * (total // 2))
            if any(extra):
                pad: list[int] = []
                for e in reversed(extra):
                    pad += [0, e]
                x = F.pad(x, pad)
            return x, left
        return x, list(conv.padding)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        conv: Any = self
        if not self._sparse_active():
            return super().forward(input)  # type: ignore[misc]
        x, padding = self._explicit_padding(input)
        return sparse_conv(
            x,
            conv.weight,
            conv.bias,
            list(conv.stride),
            padding,
            list(conv.dilation),
            conv.groups,
            self.keep,
            self.selection,
            self.sparse_input_grad,
            self.score_reduce,
        )


class SSPropConv1d(_SSPropConvNd, nn.Conv1d):
    """``nn.Conv1d`` with ssProp's channel-sparse backward."""


class SSPropConv2d(_SSPropConvNd, nn.Conv2d):
    """``nn.Conv2d`` with ssProp's channel-sparse backward."""


class SSPropConv3d(_SSPropConvNd, nn.Conv3d):
    """``nn.Conv3d`` with ssProp's channel-sparse backward."""


class SSPropLinear(SSPropMixin, nn.Linear):
    """``nn.Linear`` with ssProp's feature-sparse backward (mean |dy| over all leading dims)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self._sparse_active():
            return super().forward(input)
        return sparse_linear(
            input,
            self.weight,
            self.bias,
            self.keep,
            self.selection,
            self.sparse_input_grad,
            self.score_reduce,
        )


SPARSE_LAYERS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv1d: SSPropConv1d,
    nn.Conv2d: SSPropConv2d,
    nn.Conv3d: SSPropConv3d,
    nn.Linear: SSPropLinear,
}
