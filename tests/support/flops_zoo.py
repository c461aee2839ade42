"""The model zoo of the FLOP tests: own definitions, no torchvision."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy.models import build_model


class DepthwiseSeparable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 24, 3, padding=1),
            nn.BatchNorm2d(24),
            nn.ReLU(),
            nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False),
            nn.BatchNorm2d(24),
            nn.ReLU6(),
            nn.Conv2d(24, 48, 1),
            nn.Hardswish(),
            nn.Conv2d(48, 48, 3, padding=1, groups=4),
            nn.SiLU(),  # grouped, 12 per group
            nn.Conv2d(48, 96, 3, padding=1, groups=48),  # depthwise x2 multiplier
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(96, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Dilated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=2, dilation=2),
            nn.GELU(),
            nn.Conv2d(16, 16, 3, padding="same", dilation=3),
            nn.Tanh(),
            nn.Conv2d(16, 20, 4, stride=2, padding=1, dilation=1),
            nn.AvgPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """ConvTranspose decoder with stride, output_padding, dilation and groups."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 16, 3, stride=1, padding=2, dilation=2, groups=4),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ConvTranspose2d(16, 3, 2, stride=2),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Seq1d3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(4, 10, 5, stride=2)
        self.c3 = nn.Conv3d(1, 5, 3, padding=1)
        self.t1 = nn.ConvTranspose1d(10, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.t1(self.c1(x))
        z = self.c3(
            x[:, :1].unsqueeze(-1).expand(-1, -1, -1, 4).unsqueeze(-1).expand(-1, -1, -1, -1, 3)
        )
        return y.sum() + z.sum()


class TransformerBlock(nn.Module):
    """Functional attention and matmuls between the layers (no module for them)."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.mix = nn.Parameter(torch.randn(dim, dim) / dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v)
        x = x + self.out(att.transpose(1, 2).reshape(b, n, d))
        return x + F.gelu(x @ self.mix)


class RawAttention(nn.Module):
    """nn.MultiheadAttention on the raw input, returning its weights (the unfused path)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(12, 3, kdim=8, vdim=8)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        memory = x[..., :8]
        out, weights = self.attn(x, key=memory, value=memory)
        return self.head(out) + weights.mean()


class FunctionalConv(nn.Module):
    """Convolutions called as functions on the module's own parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 3, 3, 3) / 9)
        self.b = nn.Parameter(torch.zeros(6))
        self.wt = nn.Parameter(torch.randn(6, 2, 2, 2) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.conv2d(x, self.w, self.b, stride=2, padding=1))
        return F.conv_transpose2d(F.avg_pool2d(y, 2), self.wt, stride=2, groups=2)


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(20, 64),
        nn.ReLU(),
        nn.LayerNorm(64),
        nn.Linear(64, 64),
        nn.GELU(),
        nn.Linear(64, 5),
    )


ZOO: dict[str, tuple[object, tuple[int, ...]]] = {
    "cnn": (lambda: build_model("cnn", in_channels=3, width=20), (2, 3, 16, 16)),
    "resnet18": (lambda: build_model("resnet18", width=20), (2, 3, 16, 16)),
    "resnet50": (lambda: build_model("resnet50", width=10), (2, 3, 16, 16)),
    "depthwise_separable": (DepthwiseSeparable, (2, 3, 12, 12)),
    "dilated": (Dilated, (2, 3, 16, 16)),
    "decoder": (Decoder, (2, 32, 4, 4)),
    "unet_attention": (lambda: build_model("unet", width=8), (2, 1, 16, 16)),
    "mlp": (mlp, (4, 7, 20)),
    "transformer_block": (TransformerBlock, (2, 10, 16)),
    "raw_attention": (RawAttention, (5, 2, 12)),
    "functional_conv": (FunctionalConv, (2, 3, 16, 16)),
    "conv1d_3d": (Seq1d3d, (2, 4, 17)),
}
