"""A small CNN learns real data (scikit-learn's digits) under every drop-schedule mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from ssprop_energy import DropScheduler, convert_model
from ssprop_energy.models import build_model


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    x = torch.tensor(data.images[:512], dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(data.target[:512])


@pytest.mark.parametrize(
    ("mode", "by"),
    [
        ("constant", "epoch"),
        ("linear", "epoch"),
        ("cosine", "epoch"),
        ("bar", "epoch"),
        ("linear", "iteration"),
        ("cosine", "iteration"),
        ("bar", "iteration"),
    ],
)
def test_loss_goes_down_under_every_mode(digits, mode: str, by: str) -> None:
    x, y = digits
    torch.manual_seed(0)
    model = convert_model(build_model("cnn", depth=4, width=8), keep=1.0)
    sched = DropScheduler(
        mode,
        0.5,
        None if mode == "constant" else 0.2,
        epochs=4,
        interleave=mode == "constant",
        by=by,
        period=4,
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for epoch in range(4):
        total = 0.0
        for i, start in enumerate(range(0, len(x), 64)):
            sched.apply(model, epoch, i)
            loss = F.cross_entropy(model(x[start : start + 64]), y[start : start + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total)
    assert losses[-1] < 0.5 * losses[0], losses
