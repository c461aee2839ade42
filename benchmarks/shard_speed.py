"""Two ``--shard`` processes on one store against one process: wall time and per-run results.

Each round trains the config's whole matrix twice, into fresh stores: once with one
``ssprop-energy profile`` process, and once with two processes started together
(``--shard 1/2`` and ``--shard 2/2``) on one store; the order alternates between rounds so
drifts in machine load hit both alike. Wall times include each process's start (Python,
torch). Prints every round's times and ratio (two shards / one process), their median and
spread, and compares the per-run results of the two stores (epochs, final validation accuracy
and loss, FLOPs per run). Target: about 0.5 on a 2-core machine.

    python benchmarks/shard_speed.py [--config examples/quickstart.yaml] [--epochs 3]
                                     [--rounds 2] [--threads 1] [--no-inference]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from ssprop_energy.store import load_sweep

TARGET = 0.5


def _profile(config: Path, out: Path, shard: str | None, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "ssprop_energy", "profile", str(config), "--out", str(out)]
    command += ["--quiet"] + (["--shard", shard] if shard else [])
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def _timed(processes: list[subprocess.Popen]) -> float:
    start = time.perf_counter()
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"profile exited {process.returncode}: {err.decode()[-2000:]}")
    return time.perf_counter() - start


def _results(sweep: Path) -> pd.DataFrame:
    rows = []
    for run in load_sweep(sweep):
        last = run.epochs.iloc[-1]
        rows.append(
            {
                "run_id": run.run_id,
                "status": run.status,
                "epochs": len(run.epochs),
                "accuracy": float(last["accuracy"]),
                "val_loss": float(last["val_loss"]),
                "flops_total": int(run.epochs["flops_total"].sum()),
            }
        )
    return pd.DataFrame(rows).set_index("run_id").sort_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("examples/quickstart.yaml"))
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-inference", action="store_true", help="skip the final models' inference cost"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="OMP_NUM_THREADS of every process"
    )
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(tempfile.mkdtemp(prefix="shard-speed-"))
    raw = yaml.safe_load(args.config.read_text())
    if args.epochs is not None:
        raw["train"]["epochs"] = args.epochs
    if args.no_inference:
        raw["inference"] = {"enabled": False}
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    one_s, two_s, ratios = [], [], []
    try:
        for round_ in range(args.rounds):
            one, two = work / f"one-{round_}", work / f"two-{round_}"
            for kind in ("one", "two") if round_ % 2 == 0 else ("two", "one"):
                if kind == "one":
                    one_s.append(_timed([_profile(config, one, None, env)]))
                else:
                    parts = [_profile(config, two, f"{k}/2", env) for k in (1, 2)]
                    two_s.append(_timed(parts))
            ratios.append(two_s[-1] / one_s[-1])
            print(
                f"round {round_ + 1}: one process {one_s[-1]:.1f} s, two shards "
                f"{two_s[-1]:.1f} s, ratio {ratios[-1]:.3f}",
                flush=True,
            )
            a, b = _results(one / raw["name"]), _results(two / raw["name"])
            same_runs = list(a.index) == list(b.index)
            print(f"  runs: {len(a)} and {len(b)}, same run ids: {same_runs}")
            if same_runs:
                print(
                    f"  statuses equal: {a['status'].equals(b['status'])}, epochs equal: "
                    f"{a['epochs'].equals(b['epochs'])}, FLOPs equal: "
                    f"{a['flops_total'].equals(b['flops_total'])}"
                )
                accuracy = (a["accuracy"] - b["accuracy"]).abs().max()
                loss = (a["val_loss"] - b["val_loss"]).abs().max()
                print(f"  max |difference|: accuracy {accuracy:.4g}, val_loss {loss:.4g}")
        spread = f"{min(ratios):.3f} to {max(ratios):.3f}"
        print(
            f"ratio two shards / one process: median {statistics.median(ratios):.3f} "
            f"(rounds: {spread}; target about {TARGET}); load average {os.getloadavg()}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
