"""EnergyMeter windows around CUDA work with the real NVML: edges synchronised, so queued
kernels are charged to the window that launched them; training phases sum to the step."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from ssprop_energy.models import build_model
from ssprop_energy.profilers import EnergyMeter

pytestmark = pytest.mark.gpu

PHASES = ("data", "forward", "backward", "optimizer")


def _queue_matmuls(seconds: float) -> tuple[torch.cuda.Event, torch.cuda.Event]:
    """Launch about ``seconds`` of matmuls without waiting; CUDA events around them."""
    a = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    per_call = (time.perf_counter() - t0) / 3
    start.record()
    for _ in range(max(1, round(seconds / per_call))):
        a @ a
    end.record()
    return start, end


def test_window_edges_wait_for_queued_kernels() -> None:
    torch.cuda.init()
    with EnergyMeter(gpus="auto", cpu=None, codecarbon=False) as meter:
        assert meter.sources[0].name == "gpu0" and meter.sources[0].provenance != "unavailable"
        meter.begin("work")
        start, end = _queue_matmuls(0.5)
        work = meter.end("work")
        gpu_s = start.elapsed_time(end) / 1000
        meter.begin("after")
        after = meter.end("after")
    assert gpu_s > 0.3
    assert work.time_s >= 0.95 * gpu_s  # the window waited for the kernels it launched
    assert after.time_s < 0.05  # none left over for the next window
    assert work.energy_j["gpu0"] is not None and work.energy_j["gpu0"] > 0


def test_phases_sum_to_the_step_within_3_percent() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18").cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    meter = EnergyMeter(gpus="auto", cpu=None, codecarbon=False, interval_s=0.05)
    with meter:
        end = time.perf_counter() + 8.0
        while time.perf_counter() < end:
            with meter.window("step"):
                with meter.window("data"):
                    x = torch.randn(512, 3, 32, 32, device="cuda")
                    y = torch.randint(0, 10, (512,), device="cuda")
                with meter.window("forward"):
                    loss = F.cross_entropy(model(x), y)
                with meter.window("backward"):
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                with meter.window("optimizer"):
                    optimizer.step()
    rows = meter.summary().set_index("window")
    assert rows.loc["step", "count"] >= 20
    parts_s = rows.loc[list(PHASES), "time_s"].sum()
    assert parts_s == pytest.approx(rows.loc["step", "time_s"], rel=0.03)
    for source in meter.sources:
        column = f"energy_j_{source.name}"
        whole = rows.loc["step", column]
        parts = rows.loc[list(PHASES), column].sum()
        assert whole > 0
        assert parts == pytest.approx(whole, rel=0.03), rows.to_string()
    for name, check in meter.cross_check().items():
        assert not check["diverged"], (name, check)
