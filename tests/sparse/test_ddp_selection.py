"""ssProp under DistributedDataParallel on two gloo processes: each rank selects channels from
its own output gradient unless ``sync_selection``; the gradients are averaged either way, and
training converges. One spawn of two processes serves every test (marked slow: seconds of
process start)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssprop_energy.methods.ssprop import SSProp, SSPropConfig
from ssprop_energy.sparse import channel_scores, set_keep

pytestmark = pytest.mark.slow
WORLD = 2
TIMEOUT_S = 180


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip


def _data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's batches of an easy task: images shifted up (label 1) or down (label 0)."""
    gen = torch.Generator().manual_seed(100 + rank)
    y = torch.randint(0, 2, (240,), generator=gen)
    x = torch.randn(240, 1, 6, 6, generator=gen) + (2.0 * y - 1).view(-1, 1, 1, 1)
    return x, y


def _convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _kept_rows(model: nn.Module) -> list[list[int]]:
    """Per sparse convolution, the output channels whose weight gradient is not zero."""
    return [
        m.weight.grad.flatten(1).abs().sum(1).nonzero().flatten().tolist() for m in _convs(model)
    ]


def _top4(scores: torch.Tensor) -> list[int]:
    return sorted(torch.topk(scores, 4).indices.tolist())


def _sparse_model(sync: bool) -> nn.Module:
    model = SSProp(SSPropConfig(keep=0.5, sync_selection=sync), 1).prepare(_model())
    set_keep(model, 0.5)
    return model


def _local_selection(sync: bool, rank: int) -> dict[str, list[list[int]]]:
    """The channels one local backward keeps (no DDP: before any averaging), the top 4 of
    this rank's own channel scores, and the top 4 of the scores summed over the ranks."""
    model = _sparse_model(sync)
    grads: list[torch.Tensor] = []

    def keep_grad(module: nn.Module, inputs: object, out: torch.Tensor) -> None:
        out.register_hook(grads.append)

    for conv in _convs(model):
        conv.register_forward_hook(keep_grad)
    x, y = _data(rank)
    nn.functional.cross_entropy(model(x[:16]), y[:16]).backward()
    own = [channel_scores(g) for g in reversed(grads)]  # backward meets the layers last first
    summed = []
    for scores in own:
        parts = [torch.empty_like(scores) for _ in range(WORLD)]
        dist.all_gather(parts, scores)
        summed.append(_top4(sum(parts)))
    return {"kept": _kept_rows(model), "own": [_top4(s) for s in own], "summed": summed}


def _train(sync: bool, rank: int) -> dict[str, Any]:
    """30 DDP steps at keep 0.5: losses, and whether the ranks' gradients and weights agree."""
    model = _sparse_model(sync)
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    x, y = _data(rank)
    losses, grads_agree = [], True
    for step in range(30):
        rows = slice(16 * (step % 15), 16 * (step % 15 + 1))
        loss = nn.functional.cross_entropy(ddp(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        flat = torch.cat([p.grad.flatten() for p in model.parameters()])
        others = [torch.empty_like(flat) for _ in range(WORLD)]
        dist.all_gather(others, flat)
        grads_agree &= all(torch.allclose(o, others[0], atol=1e-6) for o in others)
        opt.step()
        losses.append(loss.item())
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(weights) for _ in range(WORLD)]
    dist.all_gather(gathered, weights)
    return {
        "losses": losses,
        "grads_agree": grads_agree,
        "weights_agree": all(torch.equal(g, gathered[0]) for g in gathered),
    }


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        result = {}
        for sync in (False, True):
            result[f"kept_{sync}"] = _local_selection(sync, rank)
            result[f"train_{sync}"] = _train(sync, rank)
        Path(out, f"rank-{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp")
    context = mp.start_processes(
        _worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the two ranks took over {TIMEOUT_S} s")
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(WORLD)]


def test_each_rank_selects_from_its_own_gradient_unless_synced(ranks: list) -> None:
    for rank in ranks:
        assert rank["kept_False"]["kept"] == rank["kept_False"]["own"]
        assert rank["kept_True"]["kept"] == rank["kept_True"]["summed"]
    assert ranks[0]["kept_True"]["kept"] == ranks[1]["kept_True"]["kept"]


@pytest.mark.parametrize("sync", [False, True])
def test_gradients_are_averaged_and_training_converges(ranks: list, sync: bool) -> None:
    for rank in ranks:
        train = rank[f"train_{sync}"]
        assert train["grads_agree"] and train["weights_agree"]
        first, last = train["losses"][:5], train["losses"][-5:]
        assert sum(last) / 5 < 0.7 * sum(first) / 5
