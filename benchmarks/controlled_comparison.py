"""The controlled comparison's interval width, cost share and bias against a known slowdown.

Each round trains a small sweep (a CNN on synthetic data, dense and a method that sleeps a
known ``--fraction`` of each step's own work, so its true time ratio to dense is
``1 + fraction``) with the controlled comparison on, and reads the run's comparison entry:
the measured ratio (geometric mean of the block pairs) and its 95% interval, whether the
interval covers the injected ratio, the interval's half-width relative to the ratio, the
pairs, why it stopped, and the cost share (the shadow's seconds over the run's own). Prints
every round, the bias (median measured / injected - 1), how many rounds covered the injected
ratio, and the machine's load average before and after.

    python benchmarks/controlled_comparison.py [--rounds 5] [--fraction 0.1] [--epochs 3]
        [--samples 1536] [--precision 0.03] [--budget 0.03] [--block-steps 2]

Run it from the repository root (it imports the method from ``tests/support``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssprop_energy import load_config, run_sweep
from ssprop_energy.stats import ratio_interval
from ssprop_energy.store import load_sweep
from tests.support.slow_method import register


def _config(out: Path, args: argparse.Namespace) -> dict[str, object]:
    return {
        "name": "controlled",
        "model": {"name": "cnn", "kwargs": {"depth": 3, "width": 16}},
        "data": {"name": "synthetic", "image_size": 16, "channels": 1,
                 "samples": args.samples, "batch_size": 32, "classes": 4},
        "train": {"epochs": args.epochs, "lr": 0.05, "device": "cpu"},
        "methods": [{"name": "dense"}, {"name": "sleepy", "fraction": args.fraction}],
        "energy": {"codecarbon": True, "idle_s": 0},
        "inference": {"enabled": False},
        "comparison": {"enabled": True, "precision": args.precision, "budget": args.budget,
                       "block_steps": args.block_steps},
        "output": str(out),
    }  # fmt: skip


def _round(args: argparse.Namespace) -> dict[str, float | str | bool]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.yaml"
        path.write_text(yaml.safe_dump(_config(Path(tmp) / "runs", args)))
        cfg = load_config(path)
        run_sweep(cfg)
        (record,) = [r for r in load_sweep(cfg.sweep_dir) if r.meta.comparison is not None]
    state = record.meta.comparison
    assert state is not None
    interval = ratio_interval(math.exp(v) for v in state.time_log_ratios)
    injected = 1.0 + args.fraction
    return {
        "ratio": interval.ratio,
        "low": interval.low,
        "high": interval.high,
        "covered": interval.low <= injected <= interval.high,
        "half_width": interval.relative_half_width,
        "pairs": state.pairs,
        "stop": state.stop,
        "cost_share": state.extra_time_s / state.train_time_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1536)
    parser.add_argument("--precision", type=float, default=0.03)
    parser.add_argument("--budget", type=float, default=0.03)
    parser.add_argument("--block-steps", type=int, default=2)
    args = parser.parse_args()
    register()
    print(f"torch {torch.__version__}, device cpu ({torch.get_num_threads()} threads)")
    load_before = os.getloadavg()[0]
    injected = 1.0 + args.fraction
    rounds = []
    for i in range(args.rounds):
        t0 = time.perf_counter()
        r = _round(args)
        rounds.append(r)
        print(
            f"round {i + 1}: ratio {r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}] "
            f"(injected {injected:.3f}, {'covered' if r['covered'] else 'NOT covered'}), "
            f"half-width {float(r['half_width']):.1%}, {r['pairs']} pairs, stop {r['stop']}, "
            f"cost {float(r['cost_share']):.1%} of the run, {time.perf_counter() - t0:.0f} s, "
            f"load {os.getloadavg()[0]:.1f}"
        )
    ratios = [float(r["ratio"]) for r in rounds]
    print(
        f"bias (median measured / injected - 1): {statistics.median(ratios) / injected - 1:+.1%}; "
        f"covered in {sum(bool(r['covered']) for r in rounds)} of {len(rounds)} rounds; "
        f"median half-width {statistics.median(float(r['half_width']) for r in rounds):.1%}; "
        f"median cost share {statistics.median(float(r['cost_share']) for r in rounds):.1%}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
