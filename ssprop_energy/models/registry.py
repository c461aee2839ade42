"""The model registry: the paper's families, written in this project (no torchvision).

- ``cnn``: a plain N-layer CNN (conv-BN-ReLU, max-pool every second layer, linear head);
- ``resnet18``/``resnet34``/``resnet50``: CIFAR-style ResNets (3x3 stem, no stem pool),
  optional dropout before the classifier;
- ``unet``: a small UNet with self-attention at the bottleneck (the denoiser of a small
  diffusion model): its output has the input's shape.

``build_model(name, **kwargs)`` also takes ``"package.module:callable"`` user factories.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


class PlainCNN(nn.Module):
    """``depth`` conv-BN-ReLU layers, 2x2 max-pool after every second one, linear head."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        depth: int = 4,
        width: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out = width * 2 ** (i // 2)
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out)]
            layers.append(nn.ReLU(inplace=True))
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a projection shortcut where shapes change."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, four stages (64-512 x ``width / 64``), linear head."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: tuple[int, int, int, int],
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes, stages = width, []
        in_planes = width
        for i, count in enumerate(blocks):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(count):
                stage.append(block(in_planes, planes, stride if j == 0 else 1))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*stage))
            planes *= 2
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.dropout(torch.flatten(self.pool(out), 1)))


def resnet18(
    in_channels: int = 3, num_classes: int = 10, width: int = 64, dropout: float = 0.0
) -> ResNet:
    """CIFAR ResNet-18 (BasicBlock, 2-2-2-2)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, width, dropout)


def resnet34(
    in_channels: int = 3, num_classes: int = 10, width: int = 64, dropout: float = 0.0
) -> ResNet:
    """CIFAR ResNet-34 (BasicBlock, 3-4-6-3)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels, num_classes, width, dropout)


def resnet50(
    in_channels: int = 3, num_classes: int = 10, width: int = 64, dropout: float = 0.0
) -> ResNet:
    """CIFAR ResNet-50 (Bottleneck, 3-4-6-3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, width, dropout)


class ConvBlock(nn.Module):
    """Two 3x3 conv-GroupNorm-SiLU layers."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.GroupNorm(min(8, out_channels), out_channels),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.GroupNorm(min(8, out_channels), out_channels),
            nn.SiLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual add."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


def time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features (``dim``, even) of diffusion times ``t`` in [0, 1]."""
    freqs = torch.exp(
        torch.arange(dim // 2, device=t.device, dtype=t.dtype) * (-math.log(10_000) / (dim // 2))
    )
    angles = 1000 * t[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class SmallUNet(nn.Module):
    """A ``levels``-deep UNet with self-attention at the bottleneck; output shape = input shape.

    Down: ConvBlock then 2x2 max-pool; up: 2x2 transposed conv, skip concat, ConvBlock.
    Input height and width must be divisible by ``2 ** levels``. With ``time_input`` the
    model takes ``(x, t)``, ``t`` one diffusion time in [0, 1] per sample (0 when None):
    sinusoidal features of ``t`` pass a small MLP, and a Linear layer per block turns them
    into a scale and shift of the block's first normalised activations (as in DDPM UNets).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        width: int = 16,
        levels: int = 2,
        time_input: bool = False,
    ) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList()
        prev = in_channels
        for c in chans[:-1]:
            self.down.append(ConvBlock(prev, c))
            prev = c
        self.mid = ConvBlock(prev, chans[-1])
        self.attn = SelfAttention2d(chans[-1])
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for c_skip, c_in in zip(reversed(chans[:-1]), reversed(chans[1:]), strict=True):
            self.ups.append(nn.ConvTranspose2d(c_in, c_skip, 2, stride=2))
            self.up_blocks.append(ConvBlock(2 * c_skip, c_skip))
        self.out = nn.Conv2d(chans[0], out_channels or in_channels, 1)
        self.time_dim = 4 * width if time_input else 0
        if time_input:
            self.time_mlp = nn.Sequential(nn.Linear(width, self.time_dim), nn.SiLU())
            blocks = [*self.down, self.mid, *self.up_blocks]
            out = [b.net[0].out_channels for b in blocks]  # type: ignore[union-attr]
            self.time_proj = nn.ModuleList(nn.Linear(self.time_dim, 2 * c) for c in out)

    def _block(
        self, block: nn.Module, x: torch.Tensor, emb: torch.Tensor | None, i: int
    ) -> torch.Tensor:
        if emb is None:
            return block(x)
        net = cast(ConvBlock, block).net  # every block is one (a ModuleList types them Module)
        h = net[2](net[1](net[0](x)))
        scale, shift = self.time_proj[i](emb)[:, :, None, None].chunk(2, dim=1)
        return net[5](net[4](net[3](h * (1 + scale) + shift)))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        emb = None
        if self.time_dim:
            times = torch.zeros(len(x), device=x.device, dtype=x.dtype) if t is None else t
            first = cast(nn.Linear, self.time_mlp[0])  # built so in __init__
            emb = self.time_mlp(time_features(times.to(x.dtype), first.in_features))
        skips = []
        for i, block in enumerate(self.down):
            x = self._block(block, x, emb, i)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.attn(self._block(self.mid, x, emb, len(self.down)))
        for j, (up, block) in enumerate(zip(self.ups, self.up_blocks, strict=True)):
            x = self._block(
                block, torch.cat([up(x), skips.pop()], dim=1), emb, len(self.down) + 1 + j
            )
        return self.out(x)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn": PlainCNN,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "unet": SmallUNet,
}

# Builtins that only one task can train (the others fit any task that takes images).
MODEL_TASKS: dict[str, str] = {"unet": "generation"}


def load_factory(spec: str) -> Callable[..., nn.Module]:
    """Import ``"package.module:callable"``; a bad spec is a UserError naming it."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"model factory {spec!r}: expected 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"model factory {spec!r}: cannot import {module_name} ({exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"model factory {spec!r}: {module_name} has no callable {attr!r}")
    return factory


def build_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered model (or a ``package.module:callable`` factory) with ``kwargs``."""
    if ":" in name:
        factory = load_factory(name)
    elif name in MODELS:
        factory = MODELS[name]
    else:
        raise UserError(f"model: unknown model {name!r} (known: {', '.join(MODELS)})")
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise UserError(f"model {name!r}: bad arguments {sorted(kwargs)} ({exc})") from None
    except ValueError:  # builtins without a signature: let the call decide
        pass
    try:
        model = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model {name!r}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model {name!r}: factory returned {type(model).__name__}, not nn.Module")
    return model
