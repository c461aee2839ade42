"""Report render time and HTML size for a 12-run sweep (targets: < 2 s, < 5 MB).

Writes a synthetic store in a temporary folder through ``ssprop_energy.store``:
dense and ssProp (keep 0.2) over a 2 x 3 lr x batch-size grid, one seed, 30 epochs each,
sources gpu0 (measured) and cpu (estimated), and a 1 Hz power trace of 30 minutes per run
and source (one chunk per epoch). Then times ``build_report`` + ``write_report`` (median of
``--reps`` runs in one process after a first one, also printed) and prints the size of
report.html.

    python benchmarks/report_speed.py [--reps 3] [--epochs 30] [--trace-s 1800]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ssprop_energy.reports import build_report, write_report
from ssprop_energy.store import RunMeta, RunStore, parse_entry

PHASES = {"data": 0.05, "forward": 0.3, "backward": 0.45, "optimizer": 0.1, "eval": 0.1}
GRID = [(lr, batch) for lr in (0.01, 0.1) for batch in (32, 64, 128)]


def _epochs(run_id: str, keep: float, lr: float, batch: int, epochs: int) -> pd.DataFrame:
    rows = []
    speed = 1.0 if keep == 1.0 else 0.8
    for epoch in range(epochs):
        accuracy = 0.9 * (1 - math.exp(-(epoch + 1) * lr * 30 * 64 / batch))
        gpu_j, cpu_j, time_s = 3000.0 * speed, 900.0, 20.0 * speed
        row: dict[str, Any] = {
            "run_id": run_id,
            "epoch": epoch,
            "keep": keep,
            "train_loss": 2 - 2 * accuracy,
            "val_loss": 2.1 - 2 * accuracy,
            "train_accuracy": accuracy,
            "accuracy": accuracy,
            "steps": 50_000 // batch,
            "time_s": time_s,
            "energy_j": gpu_j + cpu_j,
            "energy_j_gpu0": gpu_j,
            "energy_j_cpu": cpu_j,
            "provenance_gpu0": "measured",
            "provenance_cpu": "estimated",
            "emissions_kg": (gpu_j + cpu_j) / 3.6e6 * 0.4,
            "flops_forward": 1.7e14,
            "flops_backward": 3.4e14 * keep,
            "flops_backward_dense": 3.4e14,
            "flops_eval": 3.4e13,
        }
        row["flops_total"] = row["flops_forward"] + row["flops_backward"] + row["flops_eval"]
        for phase, share in PHASES.items():
            row[f"time_s_{phase}"] = time_s * share
            row[f"energy_j_{phase}"] = (gpu_j + cpu_j) * share
            row[f"energy_j_{phase}_gpu0"] = gpu_j * share
            row[f"energy_j_{phase}_cpu"] = cpu_j * share
        rows.append(row)
    return pd.DataFrame(rows)


def _power(trace_s: int) -> pd.DataFrame:
    times = [float(t) for t in range(trace_s)]
    gpu = [250 + 50 * math.sin(t / 30) for t in times]
    cpu = [60 + 5 * math.cos(t / 17) for t in times]
    return pd.DataFrame(
        {
            "time_s": times * 2,
            "source": ["gpu0"] * trace_s + ["cpu"] * trace_s,
            "power_w": gpu + cpu,
        }
    )


def write_sweep(root: Path, epochs: int, trace_s: int) -> Path:
    sweep = root / "bench"
    power = _power(trace_s)
    for method, keep in (("dense", 1.0), ("ssprop", 0.2)):
        for lr, batch in GRID:
            run_id = f"{method}-{lr}-{batch}"
            store = RunStore(sweep / run_id)
            store.write_meta(
                parse_entry(
                    RunMeta,
                    {
                        "run_id": run_id,
                        "sweep": "bench",
                        "method": method,
                        "method_label": method if keep == 1.0 else "ssprop keep=0.2",
                        "method_params": {} if keep == 1.0 else {"keep": keep},
                        "task": "classification",
                        "primary_metric": "accuracy",
                        "higher_is_better": True,
                        "mean_keep_planned": keep,
                        "flops_per_step": {},
                        "started_at": "2026-01-01T00:00:00Z",
                        "seed": 0,
                        "setup": {"lr": lr, "batch_size": batch},
                        "status": "finished",
                        "target_accuracy": 0.85,
                        "epochs_planned": epochs,
                        "epochs_done": epochs,
                        "run_config": {"model": {"name": "resnet18"}, "data": {"name": "cifar10"}},
                        "energy": {
                            "sources": {
                                "gpu0": {
                                    "provenance": "measured",
                                    "reason": None,
                                    "device": "H100",
                                },
                                "cpu": {
                                    "provenance": "estimated",
                                    "reason": None,
                                    "device": "Xeon",
                                },
                            },
                            "idle_power_w": {"gpu0": 70.0, "cpu": 40.0},
                            "country": "USA",
                            "carbon_intensity_g_per_kwh": 400.0,
                        },
                        "environment": {
                            "gpus": ["NVIDIA H100"],
                            "driver": "550",
                            "torch": "2.13.0",
                        },
                    },
                )
            )
            store.write_epochs(_epochs(run_id, keep, lr, batch, epochs))
            writer = store.power_writer(0)
            epoch_of = (power["time_s"] * epochs // trace_s).astype(int)
            for epoch, rows in power.groupby(epoch_of):
                writer.write(rows, int(epoch))
    return sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--trace-s", type=int, default=1800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = write_sweep(Path(tmp), args.epochs, args.trace_s)
        start = time.perf_counter()
        write_report(build_report([sweep]), sweep)  # the first one also loads the font cache
        first = time.perf_counter() - start
        seconds = []
        for _ in range(args.reps):
            start = time.perf_counter()
            report = build_report([sweep])
            write_report(report, sweep)
            seconds.append(time.perf_counter() - start)
        size = (sweep / "report.html").stat().st_size
    print(f"runs: {len(report.runs)}; epochs per run: {args.epochs}; trace: {args.trace_s} s")
    print(
        f"build_report + write_report: median {statistics.median(seconds):.2f} s "
        f"(min {min(seconds):.2f}, max {max(seconds):.2f}) over {args.reps} runs; target < 2 s"
    )
    print(f"first report in this process: {first:.2f} s")
    print(f"report.html: {size / 1e6:.2f} MB; target < 5 MB")
    print(f"headline: {report.headline}")


if __name__ == "__main__":
    main()
