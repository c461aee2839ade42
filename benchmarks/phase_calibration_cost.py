"""What the differential phase calibration costs on a config, against its sweep's time.

    python benchmarks/phase_calibration_cost.py examples/quickstart.yaml --sweep-s 112
    python benchmarks/phase_calibration_cost.py examples/quickstart.yaml --sweep-s 112 \\
        --variant 3,20 --variant 2,20 --variant 2,5 --variant 3,5

Runs the calibration ``energy.phase_calibration`` runs before training (every distinct
unit of the config's runs, into a temporary folder) once per ``--variant REPEATS,PERIODS``
(blocks of each kind, and update periods per block; the defaults are 3 and 20), and prints
its seconds, joules, the share of ``--sweep-s`` (the sweep's wall time, measured with
``time ssprop-energy profile CONFIG`` on the same machine) and how many phases came out
within their own noise, with the load average before and after each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pandas as pd

from ssprop_energy.harness.calibration.phases import MIN_PERIODS, REPEATS, calibrate_sweep_phases
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.runs import plan_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--sweep-s", type=float, required=True)
    parser.add_argument("--variant", action="append", default=[])
    args = parser.parse_args()
    specs = plan_runs(load_config(args.config), str(args.config))
    variants = args.variant or [f"{REPEATS},{MIN_PERIODS}"]
    for variant in variants:
        repeats, periods = (int(v) for v in variant.split(","))
        before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as folder:
            result, _ = calibrate_sweep_phases(specs, Path(folder), repeats, periods)
            table = pd.read_csv(result.path)
        noisy = int(table["note"].fillna("").str.startswith("within").sum())
        print(
            f"repeats={repeats} periods={periods}: {result.time_s:.1f} s "
            f"({100 * result.time_s / args.sweep_s:.1f}% of {args.sweep_s:.0f} s), "
            f"{result.energy_j:.4g} J ({result.provenance}); "
            f"{noisy}/{len(table)} phases within noise; "
            f"load {before:.1f} -> {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
