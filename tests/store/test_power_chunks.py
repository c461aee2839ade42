"""The power trace on disk: append-only chunks, resume without doubles, the old power.csv,
and the downsampling rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssprop_energy.store import (
    SKETCH_BINS,
    PowerTraceDamaged,
    PowerWriter,
    StoredTrace,
    load_run,
)
from ssprop_energy.store.power import SKETCH_MIN_WIDTH_S


def readings(t0: float, seconds: float, hz: float = 10.0, sources=("gpu0", "cpu")) -> pd.DataFrame:
    """Readings as the meter gives them: time since its start, per source, power_w."""
    times = np.arange(t0, t0 + seconds, 1 / hz)
    frames = [
        pd.DataFrame(
            {
                "time_s": times,
                "source": pd.Categorical([s] * len(times), categories=list(sources)),
                "power_w": 100.0 * (i + 1) + np.sin(times),
                "utilization_pct": np.nan,
            }
        )
        for i, s in enumerate(sources)
    ]
    return pd.concat(frames, ignore_index=True).sort_values("time_s", kind="stable")


def names(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "power").iterdir())


def test_chunks_are_written_once_and_read_in_order(tmp_path: Path) -> None:
    writer = PowerWriter(tmp_path, epochs_kept=0)
    writer.write(readings(0, 5), epoch=0)
    writer.write(readings(5, 5), epoch=0)  # a second part of epoch 0
    writer.write(readings(10, 5), epoch=1)
    writer.write(readings(15, 1), epoch=None)
    assert writer.write(readings(16, 0), epoch=None) is None  # no readings, no file
    assert names(tmp_path) == [
        "epoch-00000-000.parquet",
        "epoch-00000-001.parquet",
        "epoch-00001-000.parquet",
        "final-000.parquet",
    ]
    trace = StoredTrace(tmp_path)
    assert [(c.epoch, c.part) for c in trace.chunks()] == [(0, 0), (0, 1), (1, 0), (None, 0)]
    whole = trace.read()
    assert len(whole) == 2 * 160 and set(whole["source"]) == {"gpu0", "cpu"}
    for _, rows in whole.groupby("source"):
        assert rows["time_s"].is_monotonic_increasing
    assert writer.bytes_written == sum(p.stat().st_size for p in (tmp_path / "power").iterdir())


def test_resume_keeps_finished_chunks_and_doubles_none(tmp_path: Path) -> None:
    first = PowerWriter(tmp_path, epochs_kept=0)
    first.write(readings(0, 5), epoch=0)
    first.write(readings(5, 5), epoch=1)  # epoch 1's row never reached the checkpoint
    first.write(readings(10, 2), epoch=None)  # the readings of the interrupted session's end
    kept = (tmp_path / "power" / "epoch-00000-000.parquet").read_bytes()
    second = PowerWriter(tmp_path, epochs_kept=1)  # resumed from the checkpoint after epoch 0
    assert names(tmp_path) == ["epoch-00000-000.parquet"]
    assert (tmp_path / "power" / "epoch-00000-000.parquet").read_bytes() == kept
    assert second.offset_s == pytest.approx(4.9)  # the new session continues the time line
    second.write(readings(0.05, 5), epoch=1)  # a meter's first reading follows its start
    second.write(readings(5.05, 1), epoch=None)
    whole = StoredTrace(tmp_path).read()
    assert len(whole) == 2 * 110
    for _, rows in whole.groupby("source"):
        assert rows["time_s"].is_monotonic_increasing and rows["time_s"].is_unique
    third = PowerWriter(tmp_path, epochs_kept=2)
    (tmp_path / "power" / "final-000.parquet").write_bytes(b"another writer's")
    with pytest.raises(FileExistsError, match="never rewritten"):
        third.write(readings(0, 1), epoch=None)
    assert (tmp_path / "power" / "final-000.parquet").read_bytes() == b"another writer's"


def write_meta(run_dir: Path) -> None:
    meta = {
        "run_id": run_dir.name, "sweep": "s", "method": "dense", "method_label": "dense",
        "method_params": {}, "task": "classification", "primary_metric": "accuracy",
        "higher_is_better": True, "seed": 0, "setup": {}, "run_config": {},
        "epochs_planned": 1, "mean_keep_planned": 1.0, "flops_per_step": {},
        "started_at": "2026-01-01T00:00:00Z", "status": "running", "epochs_done": 0,
    }  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "meta.json").write_text(json.dumps(meta))


def test_an_old_store_with_one_power_csv_still_reads(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    write_meta(run_dir)
    old = readings(0, 30).assign(source=lambda f: f["source"].astype(str))
    old.to_csv(run_dir / "power.csv", index=False)  # the layout before the chunks
    record = load_run(run_dir)
    assert record.damage is None
    assert len(record.power) == len(old)
    assert record.power["power_w"].tolist() == pytest.approx(old["power_w"].tolist())
    overview = record.trace.overview()
    assert overview.epochs.empty  # power.csv says nothing of epochs
    assert set(overview.sketch["source"]) == {"gpu0", "cpu"}
    assert overview.sketch.groupby("source")["samples"].sum().to_dict() == {"gpu0": 300, "cpu": 300}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "power.csv").write_text("time_s,source\n0,gpu0\n"), "no column 'power_w'"),
        (lambda d: (d / "power.csv").write_text("time_s,source,power_w\n0,gpu0,1"), "cut off"),
        (
            lambda d: (d / "power" / "epoch-00000-000.parquet").write_bytes(b"PAR1 cut"),
            "not a readable Parquet file",
        ),
        (lambda d: (d / "power" / "notes.parquet").write_bytes(b""), "not a power chunk name"),
    ],
)
def test_a_damaged_trace_makes_the_run_damaged_naming_the_file(tmp_path, damage, message) -> None:
    run_dir = tmp_path / "run"
    write_meta(run_dir)
    (run_dir / "power").mkdir()
    damage(run_dir)
    record = load_run(run_dir)
    assert record.status == "damaged" and message in str(record.damage)
    assert str(run_dir) in str(record.damage)


def test_text_in_an_old_power_csv_is_one_error_naming_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_meta(run_dir)
    (run_dir / "power.csv").write_text("time_s,source,power_w\n0,gpu0,lots\n")
    with pytest.raises(PowerTraceDamaged, match=r"power.csv: column 'power_w' holds text"):
        load_run(run_dir).trace.overview()


def test_the_downsampling_rule(tmp_path: Path) -> None:
    """Per epoch: mean, min, max; the sketch: at most SKETCH_BINS bins of 1/8 s x 2^k, each
    the mean, min and max of its readings, whatever the trace's length."""
    writer = PowerWriter(tmp_path, epochs_kept=0)
    epochs = [readings(600.0 * e, 600.0) for e in range(3)]  # 30 minutes at 10 Hz
    for epoch, frame in enumerate(epochs):
        writer.write(frame, epoch)
    overview = StoredTrace(tmp_path).overview()
    whole = pd.concat(epochs)
    per_epoch = overview.epochs.set_index(["source", "epoch"])
    for epoch, frame in enumerate(epochs):
        for source, rows in frame.groupby("source", observed=True):
            row = per_epoch.loc[(source, epoch)]
            assert row["samples"] == len(rows)
            assert row["power_w"] == pytest.approx(rows["power_w"].mean())
            assert row["power_w_min"] == rows["power_w"].min()
            assert row["power_w_max"] == rows["power_w"].max()
    # 1800 s in at most 256 bins: 1/8 s x 2^k >= 1800 / 256 s -> 8 s, 225 bins
    width = SKETCH_MIN_WIDTH_S * 2 ** math.ceil(math.log2(1800 / SKETCH_BINS / SKETCH_MIN_WIDTH_S))
    assert overview.width_s == width == 8.0
    sketch = overview.sketch[overview.sketch["source"] == "gpu0"]
    assert len(sketch) == 225 <= SKETCH_BINS
    gpu = whole[whole["source"] == "gpu0"]
    first = gpu[gpu["time_s"] < width]
    assert sketch.iloc[0]["time_s"] == width / 2
    assert sketch.iloc[0]["samples"] == len(first)
    assert sketch.iloc[0]["power_w"] == pytest.approx(first["power_w"].mean())
    assert sketch.iloc[0]["power_w_max"] == first["power_w"].max()
    assert sketch["samples"].sum() == len(gpu)


def test_the_sketch_has_a_fixed_size_for_any_length(tmp_path: Path) -> None:
    for hours in (1, 8):
        run_dir = tmp_path / str(hours)
        writer = PowerWriter(run_dir, epochs_kept=0)
        for epoch in range(hours):
            writer.write(readings(3600.0 * epoch, 3600.0, hz=1.0, sources=("gpu0",)), epoch)
        sketch = StoredTrace(run_dir).overview().sketch
        assert SKETCH_BINS / 2 < len(sketch) <= SKETCH_BINS
