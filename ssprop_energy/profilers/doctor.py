"""``ssprop-energy doctor``: does the energy measurement work on this machine?

Each check is a small function returning a :class:`CheckResult` (``name``, ``status``:
``pass``, ``fail`` or ``not applicable``, ``figures``, ``reason``). :func:`run_doctor` runs
them all in this order, one result per check and GPU:

- ``nvml``: pynvml loads, NVML starts and which GPUs it sees (a fail where CUDA sees GPUs
  that NVML does not).
- ``gpuK counter period``: how often the total-energy counter changes (polled for
  ``period_s``); a fail when slower than the period the meter assumes
  (``NVML_COUNTER_RESOLUTION_S``), since windows longer than that would then be
  ``measured`` from a counter that has not moved.
- ``gpuK idle power``: ``idle_readings`` power readings before any load; their coefficient
  of variation at most ``IDLE_CV_LIMIT``.
- ``gpuK counter vs samples``: a matmul burner (:func:`matmul_burn`) loads GPU K for
  ``burn_s`` seconds inside a window that starts ``settle_s`` before and ends ``settle_s``
  after it (so the power readings, a 1 s average on Ampere and newer, catch up with the
  counter); the counter's difference against the trapezoid integral of the sampler's power
  readings over the window, at most ``DIVERGENCE_THRESHOLD`` (5%) apart.
- ``rapl``: the CPU package counter reads and moves; where permission is denied, the fail
  says how to grant it.
- ``sampler overhead``: the cost of one sampler tick over every source this machine offers,
  as a share of the sampling interval (the share of one core the sampler takes), at most
  ``SAMPLER_SHARE_LIMIT``.
- ``codecarbon cpu``: the CPU model CodeCarbon detects and the TDP of the CPU estimate, and
  whether that TDP is CodeCarbon's table's or a per-thread guess; a fail only where
  CodeCarbon's table cannot be read (no CPU estimate at all).

GPU checks without an NVML GPU, and the RAPL check without a powercap tree, are ``not
applicable`` and say why. Nothing here raises for missing hardware.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

from .carbon import TABLE_BASIS, CodeCarbonRun, CpuTdp, codecarbon_tdp
from .discovery import find_cpu, find_gpus
from .meter import DIVERGENCE_THRESHOLD
from .nvml import NVML_COUNTER_RESOLUTION_S, NvmlGpu
from .rapl import POWERCAP_ROOT, rapl_sources
from .sampler import Sampler
from .sources import EnergySource, UnavailableSource

Status = Literal["pass", "fail", "not applicable"]
Figure = float | int | str
Burn = Callable[[int, float], None]
"""``burn(cuda_index, seconds)``: keep that GPU busy for about that long."""

IDLE_CV_LIMIT = 0.05
"""Idle power readings: standard deviation over mean at most this."""
SAMPLER_SHARE_LIMIT = 0.02
"""One sampler tick over the sampling interval at most this (the meter's 2% target)."""
PERIOD_SLACK = 1.5
"""A counter period up to this times ``NVML_COUNTER_RESOLUTION_S`` passes (polling jitter)."""
PERSISTENT_GRANT_HINT = (
    "to keep it across reboots: echo 'z {root}/*-rapl:*/energy_uj 0444 - - -' | "
    "sudo tee /etc/tmpfiles.d/rapl-energy.conf"
)


@dataclass(frozen=True)
class CheckResult:
    """One check: what it found (``figures``, with units in their names) and why it passed,
    failed or does not apply (``reason``)."""

    name: str
    status: Status
    figures: dict[str, Figure] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class DoctorSettings:
    """How long and how often the checks measure (seconds, counts)."""

    burn_s: float = 10.0
    settle_s: float = 2.0
    period_s: float = 1.5
    idle_readings: int = 20
    interval_s: float = 0.1
    ticks: int = 50


def matmul_burn(cuda_index: int, seconds: float) -> None:
    """Square bfloat16 matmuls (float32 where bfloat16 is unsupported) on ``cuda:K`` until
    ``seconds`` have passed, synchronised at the end."""
    import torch

    device = torch.device("cuda", cuda_index)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    a = torch.randn(8192, 8192, device=device, dtype=dtype)
    b = torch.randn(8192, 8192, device=device, dtype=dtype)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            a = a @ b
            a = a / a.abs().amax()  # keep the values finite
        torch.cuda.synchronize(device)


def cuda_device_count() -> int:
    """How many GPUs CUDA sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _gpu_sources(sources: list[EnergySource]) -> list[NvmlGpu]:
    return [s for s in sources if isinstance(s, NvmlGpu)]


def check_nvml(sources: list[EnergySource], driver: str | None, cuda_gpus: int) -> CheckResult:
    """NVML present and which GPUs it sees."""
    gpus = _gpu_sources(sources)
    if gpus:
        figures: dict[str, Figure] = {"driver": driver or "unknown", "gpus": len(gpus)}
        figures |= {g.name: g.info.device for g in gpus}
        return CheckResult("nvml", "pass", figures, f"{len(gpus)} GPU(s) through NVML")
    reason = "; ".join(s.info.reason or "" for s in sources if s.info.reason) or "no GPU"
    if cuda_gpus:
        return CheckResult(
            "nvml", "fail", {"cuda_gpus": cuda_gpus}, f"CUDA sees {cuda_gpus} GPU(s): {reason}"
        )
    return CheckResult("nvml", "not applicable", {}, f"no NVML GPU: {reason}")


def check_counter_period(gpu: NvmlGpu, poll_s: float) -> CheckResult:
    """The energy counter's update period: the median time between changes while polling."""
    name = f"{gpu.name} counter period"
    if not gpu.is_counter:
        return CheckResult(name, "not applicable", {}, "no total-energy counter (pre-Volta)")
    changes: list[float] = []
    last = gpu.energy_j()
    end = time.perf_counter() + poll_s
    while time.perf_counter() < end:
        value = gpu.energy_j()
        if value != last:
            changes.append(time.perf_counter())
            last = value
        time.sleep(0.001)
    if len(changes) < 3:
        return CheckResult(
            name,
            "fail",
            {"changes": len(changes), "poll_s": poll_s},
            f"the counter changed {len(changes)} time(s) in {poll_s:g} s",
        )
    period = statistics.median(b - a for a, b in itertools.pairwise(changes))
    figures: dict[str, Figure] = {
        "period_s": round(period, 4),
        "assumed_s": NVML_COUNTER_RESOLUTION_S,
    }
    if period > PERIOD_SLACK * NVML_COUNTER_RESOLUTION_S:
        return CheckResult(
            name,
            "fail",
            figures,
            f"updates every {period * 1000:.0f} ms, slower than the "
            f"{NVML_COUNTER_RESOLUTION_S * 1000:.0f} ms the meter assumes: windows between "
            "the two are labelled measured from a counter that may not have moved",
        )
    return CheckResult(name, "pass", figures, f"updates every {period * 1000:.0f} ms")


def check_idle_power(gpu: NvmlGpu, readings: int, interval_s: float) -> CheckResult:
    """Power readings at idle: mean, spread, coefficient of variation."""
    name = f"{gpu.name} idle power"
    watts = []
    for _ in range(readings):
        watts.append(gpu.sample().power_w)
        time.sleep(interval_s)
    mean = statistics.fmean(watts)
    cv = statistics.pstdev(watts) / mean if mean > 0 else float("inf")
    figures: dict[str, Figure] = {
        "mean_w": round(mean, 2),
        "min_w": round(min(watts), 2),
        "max_w": round(max(watts), 2),
        "cv": round(cv, 4),
        "readings": readings,
    }
    if cv > IDLE_CV_LIMIT:
        return CheckResult(
            name,
            "fail",
            figures,
            f"varies by {cv:.1%} (limit {IDLE_CV_LIMIT:.0%}): another process may be using "
            "the GPU, so idle figures and idle subtraction are unreliable",
        )
    return CheckResult(name, "pass", figures, f"{mean:.1f} W, varies by {cv:.1%}")


def check_counter_vs_samples(
    gpu: NvmlGpu, cuda_index: int, burn: Burn, settings: DoctorSettings
) -> CheckResult:
    """Counter difference against integrated power readings over a window with a load."""
    name = f"{gpu.name} counter vs samples"
    if not gpu.is_counter:
        return CheckResult(name, "not applicable", {}, "no total-energy counter (pre-Volta)")
    sampler = Sampler([gpu], settings.interval_s, time.perf_counter())
    sampler.start()
    try:
        t0, e0 = time.perf_counter(), gpu.energy_j()
        start = sampler.power[gpu.name].mark(t0)
        time.sleep(settings.settle_s)
        burn(cuda_index, settings.burn_s)
        time.sleep(settings.settle_s)
        t1, e1 = time.perf_counter(), gpu.energy_j()
    finally:
        sampler.stop()
    if sampler.errors:
        error = next(iter(sampler.errors.values()))
        return CheckResult(name, "fail", {}, f"power sampling failed: {error.message}")
    sampled = sampler.power[gpu.name].energy_since(start, t1)
    counter = e1 - e0
    if sampled is None or counter <= 0:
        return CheckResult(
            name, "fail", {"counter_j": counter}, "the counter did not move under load"
        )
    diff = (sampled - counter) / counter
    figures: dict[str, Figure] = {
        "window_s": round(t1 - t0, 3),
        "burn_s": settings.burn_s,
        "counter_j": round(counter, 3),
        "sampled_j": round(sampled, 3),
        "mean_power_w": round(counter / (t1 - t0), 2),
        "relative_difference": round(diff, 4),
    }
    status: Status = "pass" if abs(diff) <= DIVERGENCE_THRESHOLD else "fail"
    return CheckResult(
        name,
        status,
        figures,
        f"integrated power readings {diff:+.1%} from the counter "
        f"(limit {DIVERGENCE_THRESHOLD:.0%})",
    )


def check_rapl(powercap_root: Path) -> CheckResult:
    """The RAPL package counter: readable, and moving."""
    cpu = rapl_sources(powercap_root)["cpu"]
    if isinstance(cpu, UnavailableSource):
        reason = cpu.info.reason or "RAPL unavailable"
        if "permission denied" in reason:
            hint = PERSISTENT_GRANT_HINT.format(root=powercap_root)
            return CheckResult("rapl", "fail", {}, f"{reason}; {hint}")
        return CheckResult("rapl", "not applicable", {}, reason)
    t0, e0 = time.perf_counter(), cpu.energy_j()
    time.sleep(0.2)
    t1, e1 = time.perf_counter(), cpu.energy_j()
    figures: dict[str, Figure] = {
        "device": cpu.info.device,
        "power_w": round((e1 - e0) / (t1 - t0), 2),
    }
    if e1 <= e0:
        return CheckResult("rapl", "fail", figures, "the package counter did not move in 0.2 s")
    return CheckResult("rapl", "pass", figures, f"package power {figures['power_w']} W")


def check_sampler_overhead(sources: list[EnergySource], settings: DoctorSettings) -> CheckResult:
    """Mean seconds per sampler tick over ``sources``, as a share of the interval."""
    sampler = Sampler(sources, settings.interval_s, time.perf_counter())
    if not sampler.sources:
        return CheckResult("sampler overhead", "not applicable", {}, "no source to sample")
    sampler.tick()  # first reads open files and caches
    start = time.perf_counter()
    for _ in range(settings.ticks):
        sampler.tick()
    tick_s = (time.perf_counter() - start) / settings.ticks
    share = tick_s / settings.interval_s
    figures: dict[str, Figure] = {
        "tick_s": round(tick_s, 7),
        "interval_s": settings.interval_s,
        "share": round(share, 5),
        "sources": ", ".join(s.name for s in sampler.sources),
    }
    status: Status = "pass" if share <= SAMPLER_SHARE_LIMIT else "fail"
    return CheckResult(
        "sampler overhead",
        status,
        figures,
        f"{tick_s * 1e6:.0f} us per tick, {share:.2%} of the "
        f"{settings.interval_s * 1000:.0f} ms interval (limit {SAMPLER_SHARE_LIMIT:.0%})",
    )


def check_codecarbon_cpu(tdp: Callable[[], CpuTdp] = codecarbon_tdp) -> CheckResult:
    """The CPU model CodeCarbon detects and the TDP the CPU estimate uses. Passes when the
    estimate can be formed (its figures are labelled ``estimated`` either way); the reason
    says when its TDP is a per-thread guess rather than CodeCarbon's table's."""
    try:
        found = tdp()
    except Exception as exc:  # another package's internals: report, never crash
        return CheckResult(
            "codecarbon cpu", "fail", {}, f"cannot read CodeCarbon's CPU table: {exc}"
        )
    figures: dict[str, Figure] = {"model": found.model, "tdp_w": found.tdp_w, "basis": found.basis}
    reason = f"{found.model}, TDP {found.tdp_w:g} W from {found.basis}"
    if found.basis != TABLE_BASIS:
        reason += "; without RAPL the CPU's estimated joules rest on this guess"
    return CheckResult("codecarbon cpu", "pass", figures, reason)


def guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """``check()``, or a fail named ``name`` saying what it raised (a GPU lost mid-check)."""
    try:
        return check()
    except Exception as exc:
        return CheckResult(name, "fail", {}, f"{type(exc).__name__}: {exc}")


def gpu_checks(gpu: NvmlGpu, burn: Burn, settings: DoctorSettings) -> list[CheckResult]:
    """The per-GPU checks, in order: counter period, idle power (before any load), counter
    vs samples (``gpuK`` is ``cuda:K``)."""
    cuda_index = int(gpu.name.removeprefix("gpu"))
    s = settings
    return [
        guarded(f"{gpu.name} counter period", lambda: check_counter_period(gpu, s.period_s)),
        guarded(
            f"{gpu.name} idle power",
            lambda: check_idle_power(gpu, s.idle_readings, s.interval_s),
        ),
        guarded(
            f"{gpu.name} counter vs samples",
            lambda: check_counter_vs_samples(gpu, cuda_index, burn, s),
        ),
    ]


def gpu_not_applicable(reason: str) -> list[CheckResult]:
    """The per-GPU checks where there is no NVML GPU, each saying why."""
    return [
        CheckResult(f"gpu {what}", "not applicable", {}, reason)
        for what in ("counter period", "idle power", "counter vs samples")
    ]


def run_doctor(
    settings: DoctorSettings = DoctorSettings(),
    *,
    pynvml: ModuleType | None = None,
    powercap_root: Path = POWERCAP_ROOT,
    burn: Burn = matmul_burn,
    cuda_gpus: Callable[[], int] = cuda_device_count,
    carbon: CodeCarbonRun | None = None,
    tdp: Callable[[], CpuTdp] = codecarbon_tdp,
) -> list[CheckResult]:
    """Every check, in the module docstring's order. ``pynvml``, ``powercap_root``, ``burn``,
    ``cuda_gpus``, ``carbon`` (what gives the CPU estimate) and ``tdp`` are for tests."""
    hardware = find_gpus("auto", pynvml)
    try:
        nvml = check_nvml(hardware.sources, hardware.driver, cuda_gpus())
        results = [nvml]
        gpus = _gpu_sources(hardware.sources)
        for gpu in gpus:
            results += gpu_checks(gpu, burn, settings)
        if not gpus:
            results += gpu_not_applicable(nvml.reason)
        results.append(check_rapl(powercap_root))
        cpu = find_cpu("auto", carbon or CodeCarbonRun("USA"), powercap_root)
        results.append(check_sampler_overhead([*gpus, *cpu], settings))
        for source in cpu:
            source.close()
        results.append(check_codecarbon_cpu(tdp))
    finally:
        hardware.close()
    return results
