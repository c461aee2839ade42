"""A long run at scale: the store's cost per epoch end, the meter's memory, the bytes written
and the report, for a simulated 72-hour run of 8 GPUs and the CPU sampled at 10 Hz.

Fake sources on a fake clock: eight GPUs behind a fake ``pynvml`` (energy counter, power with
noise, the four extras) and a RAPL package zone (a powercap folder on /dev/shm where there is
one), all following the clock. The real ``EnergyMeter`` (with ``clock=``: no sampler thread,
one ``sample()`` per 0.1 s of simulated time), the trainer's ``TraceFlusher`` and the real
store: per epoch an ``epoch`` window, a recorder check every simulated second (a step), and at
the epoch's end what the trainer stores then (the epoch row, the epoch's power chunk,
meta.json; the checkpoint is left out: its size is the model's). Then ``build_report`` +
``write_report`` over the run.

Measured: the store's time at each epoch end (first, last, median, max), the meter's held
readings (bytes, at most), the peak of Python allocations (tracemalloc) during the first and
the last epoch, the process's peak RSS, the bytes the store's atomic writer wrote against the
final size of the trace, and the report's time and HTML size. Targets: last epoch end <= 2x
the first and < 0.2 s; meter < 200 MB; trace bytes written <= 1.5x the final trace; report
< 10 s and < 5 MB.

    python benchmarks/long_run.py [--hours 72] [--epochs 300] [--gpus 8] [--hz 10]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ssprop_energy.harness.run.trace import TraceFlusher
from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.reports import build_report, write_report
from ssprop_energy.store import POWER_DIR, RunMeta, RunStore

STEP_S = 1.0
"""Simulated seconds per training step (the recorder checks for a due part after each)."""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeError(Exception):
    pass


class Gpu:
    """Power ``base + swing x sin(2 pi t / period)`` plus noise in the readings; the counter
    is the exact integral of the noiseless power."""

    def __init__(self, index: int, clock: Clock) -> None:
        self.index, self.clock = index, clock
        self.base, self.swing, self.period = 300.0 + 10 * index, 80.0, 600.0 + 37 * index
        self.rng = random.Random(index)

    def energy_mj(self) -> int:
        t, w = self.clock.now, 2 * math.pi / self.period
        joules = self.base * t + self.swing / w * (1 - math.cos(w * t))
        return round(joules * 1000)

    def power_mw(self) -> int:
        t = self.clock.now
        power = self.base + self.swing * math.sin(2 * math.pi * t / self.period)
        return round((power + self.rng.gauss(0, 5)) * 1000)


class FakeNvml:
    """The pynvml calls the meter makes, over :class:`Gpu` handles."""

    NVMLError = FakeError
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[Gpu]) -> None:
        self.gpus = gpus

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Gpu:
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: Gpu) -> str:
        return "Fake H100"

    def nvmlDeviceGetUUID(self, gpu: Gpu) -> str:
        return f"GPU-{gpu.index:08d}"

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: Gpu) -> int:
        return gpu.energy_mj()

    def nvmlDeviceGetPowerUsage(self, gpu: Gpu) -> int:
        return gpu.power_mw()

    def nvmlDeviceGetUtilizationRates(self, gpu: Gpu) -> SimpleNamespace:
        return SimpleNamespace(gpu=gpu.rng.randint(80, 100), memory=40)

    def nvmlDeviceGetMemoryInfo(self, gpu: Gpu) -> SimpleNamespace:
        return SimpleNamespace(used=60 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetClockInfo(self, gpu: Gpu, kind: int) -> int:
        return 1980 - gpu.rng.randint(0, 60)

    def nvmlDeviceGetTemperature(self, gpu: Gpu, kind: int) -> int:
        return 60 + gpu.rng.randint(0, 10)


class Rapl:
    """One RAPL package zone drawing 150 W, its ``energy_uj`` file kept at the clock's time."""

    def __init__(self, root: Path, clock: Clock) -> None:
        zone = root / "intel-rapl:0"
        zone.mkdir(parents=True)
        (zone / "name").write_text("package-0\n")
        (zone / "max_energy_range_uj").write_text("262143328850\n")
        self.file, self.clock = zone / "energy_uj", clock
        self.update()

    def update(self) -> None:
        self.file.write_text(f"{round(150.0 * self.clock.now * 1e6) % 262143328850}\n")


class CountingReplace:
    """Counts the bytes of every file the store's atomic writer renames into place."""

    def __init__(self) -> None:
        self.real, self.bytes = os.replace, 0

    def __call__(self, src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        self.bytes += os.stat(src).st_size
        self.real(src, dst, *args, **kwargs)


def _meta(run_id: str, epochs: int) -> RunMeta:
    return RunMeta(
        run_id=run_id,
        sweep="long",
        method="dense",
        method_label="dense",
        method_params={},
        task="classification",
        primary_metric="accuracy",
        higher_is_better=True,
        seed=0,
        setup={},
        run_config={"model": {"name": "resnet50"}, "data": {"name": "imagenet"}},
        epochs_planned=epochs,
        mean_keep_planned=1.0,
        flops_per_step={"forward": 10**12, "backward_dense": 2 * 10**12},
        started_at="2026-01-01T00:00:00+00:00",
    )


PHASES = {"data": 0.05, "forward": 0.3, "backward": 0.45, "optimizer": 0.1, "eval": 0.1}


def _row(run_id: str, epoch: int, seconds: float, energy: dict[str, float | None]) -> dict:
    """An epochs.csv row as wide as the trainer's for these sources (phases x sources)."""
    row: dict[str, Any] = {"run_id": run_id, "epoch": epoch, "keep": 1.0, "train_loss": 1.0,
                           "train_accuracy": 0.5, "val_loss": 1.0, "accuracy": 0.5,
                           "steps": round(seconds / STEP_S), "time_s": seconds}  # fmt: skip
    joules = {s: e or 0.0 for s, e in energy.items()}
    row["energy_j"] = sum(joules.values())
    for source, j in joules.items():
        row[f"energy_j_{source}"] = j
        row[f"provenance_{source}"] = "measured"
    for phase, share in PHASES.items():
        row[f"time_s_{phase}"] = seconds * share
        row[f"energy_j_{phase}"] = row["energy_j"] * share
        for source, j in joules.items():
            row[f"energy_j_{phase}_{source}"] = j * share
    row["emissions_kg"] = row["energy_j"] / 3.6e6 * 0.4
    for flops in ("flops_forward", "flops_backward", "flops_backward_dense", "flops_eval"):
        row[flops] = 10**15
    row["flops_total"] = 3 * 10**15
    return row


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def simulate(root: Path, hours: float, epochs: int, gpus: int, hz: float) -> dict[str, Any]:
    clock = Clock()
    nvml = FakeNvml([Gpu(i, clock) for i in range(gpus)])
    rapl = Rapl(root / "powercap", clock)
    run_dir = root / "long" / "run0"
    store = RunStore(run_dir)
    meta = _meta("run0", epochs)
    store.write_meta(meta)
    counting = CountingReplace()
    os.replace = counting  # type: ignore[assignment]
    ticks_per_epoch = round(hours * 3600 / epochs * hz)
    ticks_per_step = round(STEP_S * hz)
    epoch_end_s: list[float] = []
    held_max = 0
    peaks: dict[int, int] = {}
    meter = EnergyMeter(gpus="auto", cpu="rapl", codecarbon=False, interval_s=1 / hz,
                        powercap_root=root / "powercap", pynvml=nvml, clock=clock)  # type: ignore[arg-type]  # fmt: skip
    try:
        with meter:
            recorder = TraceFlusher(meter, store.power_writer(0))
            for epoch in range(epochs):
                traced = epoch in (0, epochs - 1)
                if traced:
                    tracemalloc.start()
                meter.begin("epoch")
                for tick in range(1, ticks_per_epoch + 1):
                    clock.now += 1 / hz
                    rapl.update()
                    meter.sample()
                    if tick % ticks_per_step == 0:
                        held_max = max(held_max, meter._sampler.rows.nbytes)  # type: ignore[union-attr]
                        recorder.after_step(epoch)
                m = meter.end("epoch")
                start = time.perf_counter()
                store.append_epoch(_row("run0", epoch, m.time_s, m.energy_j))
                recorder.end_epoch(epoch)
                meta.epochs_done = epoch + 1
                store.write_meta(meta)
                epoch_end_s.append(time.perf_counter() - start)
                if traced:
                    peaks[epoch] = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
            meta.status = "finished"
            store.write_meta(meta)
        recorder.end_run()
        check = meter.cross_check()
    finally:
        os.replace = counting.real
    trace_bytes = sum(p.stat().st_size for p in (run_dir / POWER_DIR).iterdir())
    return {
        "run_dir": run_dir,
        "epoch_end_s": epoch_end_s,
        "held_max": held_max,
        "peaks": peaks,
        "written": counting.bytes,
        "trace_written": recorder.writer.bytes_written,
        "trace_bytes": trace_bytes,
        "chunks": len(list((run_dir / POWER_DIR).iterdir())),
        "rows": ticks_per_epoch * epochs * (gpus + 1),
        "cross_check": check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=72.0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--hz", type=float, default=10.0)
    args = parser.parse_args()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        result = simulate(root, args.hours, args.epochs, args.gpus, args.hz)
        simulated = time.perf_counter() - started
        sweep = result["run_dir"].parent
        start, cpu = time.perf_counter(), time.process_time()
        write_report(build_report([sweep]), sweep)
        report_s, report_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        html = (sweep / "report.html").stat().st_size
        shutil.rmtree(root / "powercap")
    ends = result["epoch_end_s"]
    first, last = ends[0], ends[-1]
    print(
        f"simulated {args.hours:g} h, {args.epochs} epochs, {args.gpus} GPUs + CPU at "
        f"{args.hz:g} Hz: {result['rows']:,} readings in {result['chunks']} chunks "
        f"({simulated:.0f} s wall)"
    )
    print(
        f"store time per epoch end: first {first * 1e3:.1f} ms, last {last * 1e3:.1f} ms "
        f"(last/first {last / first:.2f}); median {statistics.median(ends) * 1e3:.1f} ms, "
        f"max {max(ends) * 1e3:.1f} ms; median of the first 10 "
        f"{statistics.median(ends[:10]) * 1e3:.1f} ms, of the last 10 "
        f"{statistics.median(ends[-10:]) * 1e3:.1f} ms; target last <= 2x first, < 200 ms"
    )
    peaks = ", ".join(f"epoch {e}: {_mb(b)}" for e, b in sorted(result["peaks"].items()))
    print(
        f"meter: held readings at most {_mb(result['held_max'])}; peak Python allocations "
        f"(tracemalloc, meter and store) {peaks}; process peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB; target < 200 MB"
    )
    print(
        f"bytes written: trace chunks {_mb(result['trace_written'])} for a final trace of "
        f"{_mb(result['trace_bytes'])} ({result['trace_written'] / result['trace_bytes']:.2f}x; "
        f"target <= 1.5x); all store writes {_mb(result['written'])} (epochs.csv and "
        "meta.json are rewritten per epoch)"
    )
    print(
        f"report: {report_s:.2f} s ({report_cpu_s:.2f} s of CPU), report.html {_mb(html)}; "
        "target < 10 s, < 5 MB"
    )
    for source, check in result["cross_check"].items():
        print(f"cross-check {source}: counter vs samples {check['relative_difference']:+.4%}")


if __name__ == "__main__":
    main()
