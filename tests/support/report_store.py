"""Hand-made results stores with known numbers, written exactly as docs/store.md describes."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

PHASE_SHARE = {"data": 0.1, "forward": 0.3, "backward": 0.4, "optimizer": 0.1, "eval": 0.1}
CARBON_G_PER_KWH = 360.0


def epoch_rows(
    run_id: str,
    accuracy: list[float],
    gpu_j: float,
    cpu_j: float,
    time_s: float,
    flops_forward: float,
    keep: float,
    gpu_provenance: str = "measured",
) -> pd.DataFrame:
    """Equal epochs: joules and seconds split over phases by PHASE_SHARE; backward FLOPs are
    twice the forward FLOPs times ``keep``; eval FLOPs are a tenth of the forward FLOPs."""
    rows = []
    for epoch, acc in enumerate(accuracy):
        energy = gpu_j + cpu_j
        row: dict[str, Any] = {
            "run_id": run_id,
            "epoch": epoch,
            "keep": keep,
            "train_loss": 2.0 - acc,
            "val_loss": 2.1 - acc,
            "train_accuracy": acc,
            "accuracy": acc,
            "steps": 10,
            "time_s": time_s,
            "energy_j": energy,
            "energy_j_gpu0": gpu_j,
            "energy_j_cpu": cpu_j,
            "provenance_gpu0": gpu_provenance,
            "provenance_cpu": "estimated",
            "emissions_kg": energy / 3.6e6 * CARBON_G_PER_KWH / 1000,
            "flops_forward": flops_forward,
            "flops_backward": 2 * flops_forward * keep,
            "flops_backward_dense": 2 * flops_forward,
            "flops_eval": flops_forward / 10,
        }
        row["flops_total"] = row["flops_forward"] + row["flops_backward"] + row["flops_eval"]
        for phase, share in PHASE_SHARE.items():
            row[f"time_s_{phase}"] = time_s * share
            row[f"energy_j_{phase}"] = energy * share
            row[f"energy_j_{phase}_gpu0"] = gpu_j * share
            row[f"energy_j_{phase}_cpu"] = cpu_j * share
        rows.append(row)
    return pd.DataFrame(rows)


def write_run(
    sweep_dir: Path,
    run_id: str,
    *,
    method: str,
    label: str,
    seed: int,
    epochs: pd.DataFrame,
    setup: dict[str, Any] | None = None,
    status: str = "finished",
    target: float | None = None,
    sweep: str | None = None,
    gpu_provenance: str = "measured",
    model: str = "cnn",
    batch_size: int | None = None,
) -> Path:
    """One run folder: meta.json, epochs.csv and a short power.csv."""
    run_dir = sweep_dir / run_id
    run_dir.mkdir(parents=True)
    meta = {
        "run_id": run_id,
        "sweep": sweep or sweep_dir.name,
        "method": method,
        "method_label": label,
        "method_params": {},
        "task": "classification",
        "primary_metric": "accuracy",
        "higher_is_better": True,
        "seed": seed,
        "setup": setup or {},
        "run_config": {
            "model": {"name": model},
            "data": {"name": "synthetic", **({"batch_size": batch_size} if batch_size else {})},
        },
        "status": status,
        "target_accuracy": target,
        "target_status": None,
        "stopped_at_target": False,
        "epochs_planned": 3,
        "epochs_done": len(epochs),
        "mean_keep_planned": float(epochs["keep"].mean()) if len(epochs) else 1.0,
        "flops_per_step": {"forward": 100, "backward_dense": 200},
        "energy": {
            "sources": {
                "gpu0": {"provenance": gpu_provenance, "reason": None, "device": "Fake GPU"},
                "cpu": {"provenance": "estimated", "reason": None, "device": "Fake CPU"},
            },
            "idle_power_w": {"gpu0": 10.0, "cpu": 5.0},
            "country": "FRA",
            "carbon_intensity_g_per_kwh": CARBON_G_PER_KWH,
        },
        "environment": {
            "python": "3.11.9",
            "torch": "2.13.0",
            "cuda": "12.4",
            "platform": "Linux",
            "cpu": "Fake CPU",
            "gpus": ["Fake GPU"],
            "driver": "550.1",
        },
        "error": "loss is NaN" if status == "diverged" else None,
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:01:00Z",
    }
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    if len(epochs):
        epochs.to_csv(run_dir / "epochs.csv", index=False)
    power = pd.DataFrame(
        {
            "time_s": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
            "source": ["gpu0"] * 3 + ["cpu"] * 3,
            "power_w": [100.0, 120.0, 110.0, 20.0, 21.0, 22.0],
        }
    )
    power.to_csv(run_dir / "power.csv", index=False)
    return run_dir


def two_method_store(root: Path, sweep: str = "demo") -> Path:
    """Dense and ssProp (keep 0.2), seeds 0 and 1, plus an interrupted ssProp seed 2.

    Per epoch (3 epochs): dense 100 J GPU + 20 J CPU, 10 s, forward 1e9 FLOPs;
    ssProp 80 J GPU + 20 J CPU (seed 1: 70 J GPU), 8 s, keep 0.2.
    Dense accuracy 0.5, 0.6, 0.7; ssProp 0.5, 0.62, 0.69 (seed 1: 0.5, 0.6, 0.71).
    """
    sweep_dir = root / sweep
    for seed in (0, 1):
        write_run(
            sweep_dir,
            f"dense{seed}",
            method="dense",
            label="dense",
            seed=seed,
            epochs=epoch_rows(f"dense{seed}", [0.5, 0.6, 0.7], 100.0, 20.0, 10.0, 1e9, 1.0),
        )
    ssprop = {0: ([0.5, 0.62, 0.69], 80.0), 1: ([0.5, 0.6, 0.71], 70.0)}
    for seed, (acc, gpu_j) in ssprop.items():
        write_run(
            sweep_dir,
            f"ssprop{seed}",
            method="ssprop",
            label="ssprop keep=0.2",
            seed=seed,
            epochs=epoch_rows(f"ssprop{seed}", acc, gpu_j, 20.0, 8.0, 1e9, 0.2),
        )
    write_run(
        sweep_dir,
        "ssprop2",
        method="ssprop",
        label="ssprop keep=0.2",
        seed=2,
        status="interrupted",
        epochs=epoch_rows("ssprop2", [0.3], 10.0, 1.0, 1.0, 1e9, 0.2),
    )
    return sweep_dir


GRID = {
    # (lr, batch_size): (validation accuracy per epoch, GPU joules per epoch); CPU 20 J/epoch
    (0.1, 32): ([0.5, 0.6, 0.7], 100.0),  # target 0.6 at epoch 2: 240 J
    (0.1, 64): ([0.6, 0.7, 0.8], 80.0),  # epoch 1: 100 J (best)
    (0.01, 32): ([0.3, 0.4, 0.5], 50.0),  # never reaches 0.6
    (0.01, 64): ([0.4, 0.5, 0.6], 180.0),  # epoch 3: 600 J (worst, 6x the best)
}


def grid_store(root: Path, sweep: str = "grid") -> Path:
    """A dense lr x batch-size sweep (GRID, seed 0), and ssProp at lr 0.1, batch size 64."""
    sweep_dir = root / sweep
    for (lr, batch), (accuracy, gpu_j) in GRID.items():
        run_id = f"dense-{lr}-{batch}"
        write_run(
            sweep_dir,
            run_id,
            method="dense",
            label="dense",
            seed=0,
            setup={"lr": lr, "batch_size": batch},
            target=0.6,
            epochs=epoch_rows(run_id, accuracy, gpu_j, 20.0, 5.0, 1e9, 1.0),
        )
    write_run(
        sweep_dir,
        "ssprop-0.1-64",
        method="ssprop",
        label="ssprop keep=0.2",
        seed=0,
        setup={"lr": 0.1, "batch_size": 64},
        target=0.6,
        epochs=epoch_rows("ssprop-0.1-64", [0.6, 0.7, 0.8], 60.0, 20.0, 4.0, 1e9, 0.2),
    )
    return sweep_dir


def make_read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod the folder read-only; as root (which ignores modes) refuse its temp files too."""
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        real = tempfile.mkstemp

        def refuse(*args, **kwargs):
            if Path(kwargs.get("dir", "")) == folder:
                raise PermissionError(errno.EACCES, "Permission denied")
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)


def write_inference(
    run_dir: Path,
    params: int,
    flops_per_sample: int,
    latency_ms: float,
    gpu_j: float,
    cpu_j: float = 1.0,
    batches: tuple[int, ...] = (1, 32),
    gpu_provenance: str = "measured",
) -> None:
    """inference.csv of the run: at batch b, latency ``latency_ms * b ** 0.5``, seconds per
    1,000 samples ``latency / b``, and ``gpu_j`` and ``cpu_j`` per 1,000 samples divided by b."""
    rows = []
    for b in batches:
        latency = latency_ms * b**0.5
        rows.append(
            {
                "batch_size": b,
                "samples": 1024 if b > 1 else 1000,
                "batches": 1024 // b if b > 1 else 1000,
                "params": params,
                "flops_forward_per_sample": flops_per_sample,
                "latency_ms": latency,
                "time_s_per_1000": latency / b,
                "energy_j_per_1000": (gpu_j + cpu_j) / b,
                "provenance": "estimated",
                "energy_j_per_1000_gpu0": gpu_j / b,
                "provenance_gpu0": gpu_provenance,
                "energy_j_per_1000_cpu": cpu_j / b,
                "provenance_cpu": "estimated",
            }
        )
    pd.DataFrame(rows).to_csv(run_dir / "inference.csv", index=False)


def write_gates(run_dir: Path, kept: dict[str, tuple[int, int]]) -> None:
    """gates.csv of the run: ``{layer: (channels, kept)}``, fully polarized channel gates."""
    rows = [
        {
            "layer": layer,
            "level": "channel",
            "channels": channels,
            "kept": k,
            "open_fraction": k / channels,
            "polarization": 0.0,
        }
        for layer, (channels, k) in kept.items()
    ]
    pd.DataFrame(rows).to_csv(run_dir / "gates.csv", index=False)


GATED_LAYERS = {0: {"features.0": (16, 8), "features.3": (32, 15)},
                1: {"features.0": (16, 9), "features.3": (32, 16)}}  # fmt: skip


def green_store(root: Path, sweep: str = "green", unmeasured: bool = False) -> Path:
    """Dense and gated (seeds 0 and 1, training batch 32), every run with its inference.csv,
    the gated runs with gates.csv; ``unmeasured``: and a dense seed 2 without inference.csv.

    Dense: 10,000 parameters, 2e6 FLOPs per sample, 2 ms at batch 1, 30 J GPU per 1,000
    samples. Gated: 5,000 / 1e6 (seed 1: 5,200 / 1.1e6), 1.2 ms (seed 1: 1.4 ms), 15 J GPU.
    """
    sweep_dir = root / sweep
    gated = {0: (5000, 1_000_000, 1.2), 1: (5200, 1_100_000, 1.4)}
    for seed in (0, 1):
        dense = write_run(
            sweep_dir,
            f"dense{seed}",
            method="dense",
            label="dense",
            seed=seed,
            batch_size=32,
            epochs=epoch_rows(f"dense{seed}", [0.5, 0.6, 0.7], 100.0, 20.0, 10.0, 1e9, 1.0),
        )
        write_inference(dense, 10_000, 2_000_000, 2.0, 30.0)
        run = write_run(
            sweep_dir,
            f"gated{seed}",
            method="gated",
            label="gated keep=0.5",
            seed=seed,
            batch_size=32,
            epochs=epoch_rows(f"gated{seed}", [0.5, 0.6, 0.69], 90.0, 20.0, 9.0, 8e8, 1.0),
        )
        params, flops, latency = gated[seed]
        write_inference(run, params, flops, latency, 15.0)
        write_gates(run, GATED_LAYERS[seed])
    if not unmeasured:
        return sweep_dir
    write_run(
        sweep_dir,
        "dense2",
        method="dense",
        label="dense",
        seed=2,
        batch_size=32,
        epochs=epoch_rows("dense2", [0.5, 0.6, 0.7], 100.0, 20.0, 10.0, 1e9, 1.0),
    )
    return sweep_dir
