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
        "run_config": {"model": {"name": model}, "data": {"name": "synthetic"}},
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
