"""Where gates can go: channel chains and residual blocks, found by tracing the model.

A channel gate sits on the input of a convolution (the *consumer*) whose input channels are
exactly the output channels of another convolution (the *producer*), with only per-channel
layers in between (normalisation with per-channel statistics, element-wise activations,
pooling, dropout, depthwise convolutions), each used once. Closing a channel then zeroes it
where it enters the consumer; removing it from the producer, every layer between and the
consumer's input gives the same output. A convolution whose output is added to another
(a residual sum), concatenated, used twice or flattened into a linear layer is not gated.

A residual block is a module whose traced graph ends in one sum of a *branch* (a path with a
convolution) and a *shortcut* (the block's input itself, or one module applied to it).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
PER_CHANNEL_MODULES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
SLICED = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # per-channel layers with state
PER_CHANNEL_FUNCTIONS = {
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.dropout,
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool2d,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
}
PER_CHANNEL_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous"}
ADDS = {operator.add, operator.iadd, torch.add}


@dataclass(frozen=True)
class ChannelChain:
    """A producer convolution's output channels, the per-channel layers they pass (those with
    per-channel state, to slice) and the convolution that consumes them."""

    producer: str
    between: tuple[str, ...]
    consumer: str
    channels: int


@dataclass(frozen=True)
class ResidualBlock:
    """A block ``branch(x) + shortcut(x)`` as traced: its graph, the sum node, the branch
    operand and the block's input node."""

    name: str
    channels: int  # of the block's input
    graph: fx.GraphModule
    total: fx.Node
    branch: fx.Node
    input: fx.Node


def trace(model: nn.Module, what: str) -> fx.GraphModule:
    """``model`` traced symbolically; a model fx cannot trace is a ValueError."""
    try:
        return fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot trace the {what} to place gates ({first})") from None


def _plain_conv(module: nn.Module) -> bool:
    return isinstance(module, CONVS) and module.groups == 1


def _depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, CONVS)
        and module.groups > 1
        and module.groups == module.in_channels == module.out_channels
    )


def _only_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _passes_channels(node: fx.Node, source: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` maps each channel of ``source`` to the same channel alone."""
    if not node.args or node.args[0] is not source:
        return False
    if any(isinstance(a, fx.Node) for a in (*node.args[1:], *node.kwargs.values())):
        return False
    if node.op == "call_module":
        module = modules[str(node.target)]
        return isinstance(module, PER_CHANNEL_MODULES) or _depthwise(module)
    if node.op == "call_function":
        return node.target in PER_CHANNEL_FUNCTIONS
    return node.op == "call_method" and node.target in PER_CHANNEL_METHODS


def channel_chains(model: nn.Module) -> list[ChannelChain]:
    """Every producer-to-consumer channel chain of ``model``, in graph order."""
    graph = trace(model, "model")
    modules = dict(graph.named_modules())
    chains = []
    for node in graph.graph.nodes:
        if node.op != "call_module" or not _plain_conv(modules[str(node.target)]):
            continue
        producer = modules[str(node.target)]
        between: list[str] = []
        current, user = node, _only_user(node)
        while user is not None and _passes_channels(user, current, modules):
            if user.op == "call_module" and isinstance(
                modules[str(user.target)], (*SLICED, *CONVS)
            ):
                between.append(str(user.target))
            current, user = user, _only_user(user)
        if (
            user is not None
            and user.op == "call_module"
            and user.args[:1] == (current,)
            and _plain_conv(modules[str(user.target)])
            and modules[str(user.target)].in_channels == producer.out_channels
        ):
            chains.append(
                ChannelChain(
                    str(node.target), tuple(between), str(user.target), producer.out_channels
                )
            )
    return chains


def _sum_node(graph: fx.Graph) -> fx.Node | None:
    sums = [
        n
        for n in graph.nodes
        if (n.op == "call_function" and n.target in ADDS)
        or (n.op == "call_method" and n.target in ("add", "add_"))
    ]
    return sums[0] if len(sums) == 1 else None


LINEAR_MODULES = (*CONVS, *SLICED, nn.Identity, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


def _is_shortcut(node: fx.Node, x: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` is ``x`` or ``x`` through linear layers only (a projection)."""
    while node is not x:
        if not (
            node.op == "call_module"
            and len(node.args) == 1
            and not node.kwargs
            and isinstance(node.args[0], fx.Node)
            and isinstance(modules[str(node.target)], LINEAR_MODULES)
        ):
            return False
        node = node.args[0]
    return True


def split_residual(
    block: fx.GraphModule,
) -> tuple[fx.Node, fx.Node, fx.Node, fx.Node] | None:
    """``(sum, branch, shortcut, input)`` of a residual block; None for other modules."""
    graph = block.graph
    modules = dict(block.named_modules())
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    total = _sum_node(graph)
    if len(inputs) != 1 or total is None or len(total.args) != 2:
        return None
    a, b = total.args
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        return None
    x = inputs[0]
    short_a, short_b = _is_shortcut(a, x, modules), _is_shortcut(b, x, modules)
    if short_a == short_b:
        return None
    branch, shortcut = (b, a) if short_a else (a, b)
    return total, branch, shortcut, x


def residual_blocks(model: nn.Module) -> list[ResidualBlock]:
    """Every submodule of ``model`` that traces as a residual block (the innermost, where a
    container of one block traces as one too)."""
    blocks = []
    for name, module in model.named_modules():
        if not name or not list(module.children()):
            continue
        try:
            graph = fx.symbolic_trace(module)
        except Exception:  # not traceable on its own: not a block we can gate
            continue
        parts = split_residual(graph)
        if parts is None:
            continue
        modules = dict(graph.named_modules())
        first = next(
            (
                modules[str(n.target)]
                for n in graph.graph.nodes
                if n.op == "call_module"
                and n.args[:1] == (parts[3],)
                and isinstance(modules[str(n.target)], CONVS)
            ),
            None,
        )
        if first is not None and any(
            n.op == "call_module" and isinstance(modules[str(n.target)], CONVS)
            for n in _ancestors(parts[1])
        ):
            total, branch, _, x = parts
            blocks.append(ResidualBlock(name, first.in_channels, graph, total, branch, x))
    names = [b.name for b in blocks]
    return [b for b in blocks if not any(n.startswith(b.name + ".") for n in names)]


def _ancestors(node: fx.Node) -> list[fx.Node]:
    seen, stack = [], [node]
    while stack:
        n = stack.pop()
        seen.append(n)
        stack.extend(a for a in n.all_input_nodes if a not in seen)
    return seen
