"""How good is ``ssprop-energy estimate`` here: predict a sweep, train it, compare per run.

    python benchmarks/estimate_accuracy.py examples/quickstart.yaml
    python benchmarks/estimate_accuracy.py examples/resnet18-small.yaml --epochs 3 --no-inference

Runs ``estimate_sweep`` and then the real sweep (``run_sweep``) into a fresh folder, and
prints per run the predicted and actual training time and energy (summary.csv's ``time_s``
and ``energy_j``), their ratio actual / predicted, and whether the actual figure lies in the
estimate's interval; then the calibration's cost against the predicted training time and
the sweep's wall time. The load average before and after is printed with the figures: on a
shared machine other processes' work lands in both calibration and training.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

from ssprop_energy import estimate_sweep, run_sweep
from ssprop_energy.harness.config import parse_config
from ssprop_energy.reports import build_report


def _load(path: Path, args: argparse.Namespace) -> dict:
    raw = yaml.safe_load(path.read_text())
    if args.epochs is not None:
        raw["train"]["epochs"] = args.epochs
    if args.width is not None:
        raw["model"].setdefault("kwargs", {})["width"] = args.width
    if args.batch_size is not None:
        raw["data"]["batch_size"] = args.batch_size
    if args.no_inference:
        raw["inference"] = {**raw.get("inference", {}), "enabled": False}
    return raw


def _load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--steps", type=int, default=20, help="estimate --steps")
    parser.add_argument("--epochs", type=int, help="shorten: train.epochs")
    parser.add_argument("--width", type=int, help="shorten: model.kwargs.width")
    parser.add_argument("--batch-size", type=int, help="data.batch_size")
    parser.add_argument(
        "--no-inference", action="store_true", help="skip the runs' inference measurement"
    )
    parser.add_argument("--out", type=Path, help="results folder (default: a fresh temp one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="estimate-accuracy-"))
    cfg = parse_config(_load(args.config, args), str(args.config))
    print(
        f"{args.config}: {cfg.model.label} {cfg.model.kwargs}, batch {cfg.data.batch_size}, "
        f"{cfg.train.epochs} epochs -> {out}"
    )
    print("before:", _load_line())
    estimate = estimate_sweep(cfg, steps=args.steps, out=out)
    print("after estimate:", _load_line())
    t0 = time.perf_counter()
    result = run_sweep(cfg, out=out)
    sweep_s = time.perf_counter() - t0
    print("after sweep:", _load_line())
    runs = build_report([result.sweep_dir]).runs
    print(
        f"\n{'run':44} {'pred s':>9} {'act s':>9} {'ratio':>6} {'in':>3} "
        f"{'pred J':>10} {'act J':>10} {'ratio':>6} {'in':>3} (other processes' CPU share)"
    )
    for _, r in runs.iterrows():
        cells = []
        for column in ("time_s", "energy_j"):
            predicted, actual = r[f"predicted_{column}"], r[column]
            inside = r[f"predicted_{column}_low"] <= actual <= r[f"predicted_{column}_high"]
            cells.append(
                f"{predicted:9.1f} {actual:9.1f} {actual / predicted:6.3f} "
                f"{'yes' if inside else 'no':>3}"
            )
        print(f"{r['run'][:44]:44} {cells[0]} {cells[1]} other load {r['cpu_load_other']:.2f}")
    predicted_s = float(runs["predicted_time_s"].sum())
    actual_s = float(runs["time_s"].sum())
    print(
        f"\nsum of runs: predicted {predicted_s:.1f} s, actual {actual_s:.1f} s "
        f"(ratio {actual_s / predicted_s:.3f}); energy predicted "
        f"{runs['predicted_energy_j'].sum():.1f} J, actual {runs['energy_j'].sum():.1f} J"
    )
    print(
        f"calibration: {estimate.time_s:.1f} s in all ({estimate.calibration_time_s:.1f} s "
        f"metered, {estimate.energy_j:.1f} J {estimate.provenance}) = "
        f"{100 * estimate.share:.1f}% of the predicted training time, "
        f"{100 * estimate.time_s / sweep_s:.1f}% of the sweep's wall time ({sweep_s:.1f} s, "
        "with start-up, idle measurement, checkpoints and inference)"
    )
    print(
        f"cost share: the calibration is {100 * estimate.time_s / actual_s:.1f}% of the "
        f"runs' actual training time ({actual_s:.1f} s, the goal: at most 3%)"
    )
    print(
        estimate.calibration[
            ["keep", "unit", "units", "stopped", "time_s_per_unit", "time_s_per_unit_std", "rse"]
        ].to_string(index=False)
    )


if __name__ == "__main__":
    main()
