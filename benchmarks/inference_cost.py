"""The inference measurement on the quick-start model: its wall time per run, and dense
against ssProp's final model.

Builds the runs of ``examples/quickstart.yaml`` at seed 0 (dense and ssProp keep 0.2
interleaved; untrained weights: the cost of a forward pass does not depend on them) and
measures each with ``measure_inference`` exactly as a run's end does (batch 1 and the
training batch size, 1,000 samples, inside a running ``EnergyMeter`` with CodeCarbon),
alternating the two models so drifts in machine load hit both alike. Prints each round's
figures, the wall time of one measurement (what it adds to a run), and per model and batch
size the mean, standard deviation and range of latency and joules per 1,000 samples.
ssProp's final model runs the plain forward pass (its layers are sparse only in backward),
so the two should agree within noise.

    python benchmarks/inference_cost.py [--rounds 3] [--samples 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.run.build import build_run, load_run_data
from ssprop_energy.harness.run.inference import measure_inference
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.profilers import EnergyMeter

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"


def _spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3g} sd {sd:.2g} ({min(values):.3g}-{max(values):.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    specs = [s for s in plan_runs(load_config(CONFIG)) if s.seed == 0]
    data = load_run_data(specs[0])
    contexts = {s.label: build_run(s, data, torch.device("cpu")) for s in specs}
    batches = specs[0].inference.resolve(specs[0].data.batch_size)
    tables: dict[str, list[pd.DataFrame]] = {label: [] for label in contexts}
    walls = []
    with EnergyMeter(gpus=None, cpu="auto", codecarbon=True) as meter:
        for round_ in range(args.rounds):
            for label, ctx in contexts.items():
                start = time.perf_counter()
                table = measure_inference(
                    ctx.model, data, ctx.device, batches, args.samples, meter=meter
                )
                walls.append(time.perf_counter() - start)
                tables[label].append(table.set_index("batch_size"))
                figures = ", ".join(
                    f"batch {b}: {r.latency_ms:.3g} ms, {r.energy_j_per_1000:.3g} J/1000 "
                    f"({r.provenance})"
                    for b, r in table.set_index("batch_size").iterrows()
                )
                print(f"round {round_} {label}: {walls[-1]:.2f} s; {figures}", flush=True)
    print(f"wall time of one measurement (s): {_spread(walls)}")
    for label, rows in tables.items():
        for b in batches:
            latency = [float(t.loc[b, "latency_ms"]) for t in rows]
            joules = [float(t.loc[b, "energy_j_per_1000"]) for t in rows]
            print(
                f"{label}, batch {b}: latency ms {_spread(latency)}; "
                f"J per 1,000 samples {_spread(joules)}"
            )


if __name__ == "__main__":
    main()
