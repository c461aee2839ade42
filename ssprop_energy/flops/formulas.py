"""FLOP formulas: small pure functions over shapes (one FLOP = one multiply or one add).

A multiply-accumulate is 2 FLOPs, torch's ``FlopCounterMode`` convention (fvcore counts one
MAC as one "flop"). ``k`` is the number of output channels (features) whose gradient is
computed: ``C_out`` for a dense layer, fewer for an ssProp layer.

Convolutions, linear layers, matmuls and attention are exact (they are what torch's counter
counts, and the cross-check proves the match). Norms, activations, pooling, upsampling,
element-wise ops and ssProp's channel scoring use the nominal per-element costs written in
each function's docstring; torch's counter does not count them at all.
"""

from __future__ import annotations

from math import prod


def conv_forward(
    n: int,
    c_in: int,
    c_out: int,
    groups: int,
    kernel: tuple[int, ...],
    out_spatial: tuple[int, ...],
) -> int:
    """``2 * N * C_out * S * (C_in / g) * K``: every output element is a dot product of
    ``(C_in / g) * K`` input values with the kernel."""
    return 2 * n * c_out * prod(out_spatial) * (c_in // groups) * prod(kernel)


def conv_grad_input(
    n: int, c_in: int, k: int, groups: int, kernel: tuple[int, ...], out_spatial: tuple[int, ...]
) -> int:
    """A transposed convolution of the ``k`` kept output-gradient channels with their
    filters: every (kept) output element scatters ``(C_in / g) * K`` products back, so the
    count is the forward's with C_out replaced by k. Depthwise-style layers keep k whole
    groups of ``C_in / g`` input channels each: the same expression."""
    return conv_forward(n, c_in, k, groups, kernel, out_spatial)


def conv_grad_weight(
    n: int, c_in: int, k: int, groups: int, kernel: tuple[int, ...], out_spatial: tuple[int, ...]
) -> int:
    """Each of the ``k * (C_in / g) * K`` kept weights sums ``N * S`` products of input and
    output gradient: again the forward's count with C_out replaced by k."""
    return conv_forward(n, c_in, k, groups, kernel, out_spatial)


def conv_grad_bias(n: int, k: int, out_spatial: tuple[int, ...]) -> int:
    """Sum of the output gradient over batch and space for each kept channel."""
    return n * k * prod(out_spatial)


def conv_transpose_forward(
    n: int, c_in: int, c_out: int, groups: int, kernel: tuple[int, ...], in_spatial: tuple[int, ...]
) -> int:
    """``2 * N * C_in * S_in * (C_out / g) * K``: every input element scatters into
    ``(C_out / g) * K`` outputs (stride, padding, output_padding and dilation change where,
    not how many)."""
    return 2 * n * c_in * prod(in_spatial) * (c_out // groups) * prod(kernel)


def linear_forward(rows: int, in_features: int, out_features: int) -> int:
    """``2 * rows * in * out``; ``rows`` is the product of all leading dimensions."""
    return 2 * rows * in_features * out_features


def linear_grad(rows: int, in_features: int, k: int) -> int:
    """grad_input (``dy[:, idx] @ W[idx]``) or grad_weight (``dy[:, idx].T @ x``)."""
    return 2 * rows * in_features * k


def linear_grad_bias(rows: int, k: int) -> int:
    return rows * k


def norm_forward(numel: int, affine: bool) -> int:
    """Nominal: statistics 3 per element (sum; squared deviation, sum), normalise 2
    (subtract, multiply by 1/std), affine 2 (scale, shift)."""
    return numel * (5 + (2 if affine else 0))


def norm_grad_input(numel: int) -> int:
    """Nominal 8 per element: two reductions (sum dy, sum dy*xhat) and the combination."""
    return 8 * numel


def norm_grad_affine(numel: int) -> tuple[int, int]:
    """(grad_weight, grad_bias): ``sum(dy * xhat)`` is 2 per element, ``sum(dy)`` is 1."""
    return 2 * numel, numel


ACTIVATION_COST: dict[str, tuple[int, int]] = {
    # name: (forward, grad_input) FLOPs per element, nominal
    "ReLU": (1, 1),
    "ReLU6": (2, 1),
    "LeakyReLU": (2, 2),
    "Hardtanh": (2, 1),
    "ELU": (4, 3),
    "Sigmoid": (4, 2),
    "Tanh": (4, 2),
    "SiLU": (5, 6),
    "Hardswish": (4, 4),
    "Hardsigmoid": (4, 2),  # x / 6 + 0.5 clamped to [0, 1]; backward: mask and scale
    "Mish": (8, 10),
    "GELU": (8, 10),
    "Softmax": (5, 4),
    "LogSoftmax": (5, 4),
    # dropout in training: one multiply by the scaled mask each way (nothing in eval)
    "Dropout": (1, 1),
    "Dropout1d": (1, 1),
    "Dropout2d": (1, 1),
    "Dropout3d": (1, 1),
    "AlphaDropout": (2, 1),
}


def activation(name: str, numel: int) -> tuple[int, int]:
    """(forward, grad_input) of an element-wise activation, per ``ACTIVATION_COST``."""
    forward, backward = ACTIVATION_COST[name]
    return forward * numel, backward * numel


def unary(numel: int) -> tuple[int, int]:
    """(forward, grad_input) of an element-wise math op (exp, sqrt, sin, pow, ...), nominal:
    one op per element forward; backward evaluates the derivative and multiplies, two."""
    return numel, 2 * numel


def embedding(out_numel: int) -> tuple[int, int]:
    """(forward, grad_weight) of an embedding lookup: a gather (0); its gradient adds each
    output row into the table, one add per output element."""
    return 0, out_numel


def max_pool(out_numel: int, window: int) -> tuple[int, int]:
    """(forward, grad_input): ``window - 1`` comparisons per output; the gradient is routed
    (one add per output, as overlapping windows accumulate)."""
    return out_numel * (window - 1), out_numel


def avg_pool(out_numel: int, window: int) -> tuple[int, int]:
    """(forward, grad_input): ``window - 1`` adds and one divide per output; backward
    divides each output gradient once and adds it into ``window`` inputs."""
    return out_numel * window, out_numel * (window + 1)


def upsample(out_numel: int, mode: str) -> tuple[int, int]:
    """(forward, grad_input): nearest copies (0 forward, 1 add per output backward);
    (bi|tri)linear interpolation is 3, 7 or 15 FLOPs per output by its dimension."""
    cost = {
        "nearest": 0,
        "nearest-exact": 0,
        "linear": 3,
        "bilinear": 7,
        "bicubic": 31,
        "trilinear": 15,
    }.get(mode, 7)
    return out_numel * cost, out_numel * max(cost, 1)


def elementwise(numel: int) -> int:
    """One add (a residual connection) or multiply per output element. An add's backward
    only passes the gradient on (0); a product's costs one multiply per element for each
    operand that needs a gradient."""
    return numel


def reduce_sum(in_numel: int) -> int:
    """A sum over some dimensions: one add per input element (nominal); its backward
    broadcasts the gradient (0)."""
    return in_numel


def matmul(batch: int, m: int, k: int, n: int) -> int:
    """``2 * batch * m * k * n`` for ``batch`` products of (m x k) by (k x n). The gradient
    of either operand is one matmul of the same size (``dy @ b^T`` or ``a^T @ dy``)."""
    return 2 * batch * m * k * n


def sdpa_forward(batch_heads: int, q_len: int, kv_len: int, head_dim: int, v_dim: int) -> int:
    """``Q @ K^T`` and ``softmax(.) @ V``: ``2*BH*L*S*d + 2*BH*L*S*d_v``."""
    return 2 * batch_heads * q_len * kv_len * (head_dim + v_dim)


def sdpa_backward(batch_heads: int, q_len: int, kv_len: int, head_dim: int, v_dim: int) -> int:
    """Five batched matmuls, torch's convention for fused attention kernels: recompute the
    scores, grad of ``P @ V`` for P and for V, and of ``Q @ K^T`` for K and for Q."""
    scores = 2 * batch_heads * q_len * kv_len * head_dim
    through_v = 2 * batch_heads * q_len * kv_len * v_dim
    return 3 * scores + 2 * through_v


def sdpa_math_backward(batch_heads: int, q_len: int, kv_len: int, head_dim: int, v_dim: int) -> int:
    """The unfused path (``bmm``, softmax, ``bmm``, as ``nn.MultiheadAttention`` runs when it
    must return the attention weights): the gradients of its two batched matmuls, four
    matmuls of the forward's sizes and no recomputation."""
    scores = 2 * batch_heads * q_len * kv_len * head_dim
    through_v = 2 * batch_heads * q_len * kv_len * v_dim
    return 2 * scores + 2 * through_v


def channel_scoring(dy_numel: int, selection: str) -> int:
    """ssProp's selection overhead, its own column (it is no convolution). ``"topk"`` scores
    each output channel by ``mean(|dy|)``: one abs and one add per element of ``dy``, so
    ``2 * numel(dy)``; the per-channel divide and the top-k over ``C_out`` scores are
    negligible and not counted. ``"random"`` draws ``C_out`` random numbers: 0."""
    return 2 * dy_numel if selection == "topk" else 0
