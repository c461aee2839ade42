"""The trainer stores the power trace as append-only chunks: one per epoch and the rest at
the end, and a resumed run keeps every finished chunk and stores no reading twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.run import checkpoint, trace, trainer
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.profilers import EnergyMeter
from ssprop_energy.store import load_run
from tests.support.harness_configs import write_config
from tests.support.profiler_fakes import FakeGpu, FakeNvml


@pytest.fixture(autouse=True)
def fake_gpu_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A meter with one fake GPU (its readings are the trace), no CPU source."""

    def meter(energy: object, device: object) -> EnergyMeter:
        gpus = FakeNvml([FakeGpu("GPU-a", power_w=120.0)])
        return EnergyMeter(gpus="auto", cpu=None, codecarbon=False, interval_s=0.01, pynvml=gpus)  # type: ignore[arg-type]

    monkeypatch.setattr(trainer, "build_meter", meter)


def spec_of(tmp_path: Path, epochs: int = 3):  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": epochs})
    (spec,) = plan_runs(load_config(config))
    return spec


def chunk_names(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "power").iterdir())


def assert_one_time_line(run_dir: Path) -> None:
    trace = load_run(run_dir).power
    assert not trace.empty and set(trace["source"]) == {"gpu0"}
    times = trace["time_s"]
    assert times.is_monotonic_increasing and times.is_unique  # nothing stored twice


def test_a_run_stores_one_chunk_per_epoch_and_the_rest_at_its_end(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    run_dir = tmp_path / "run"
    outcome = trainer.run_training(spec, run_dir)
    assert outcome.status == "finished"
    assert chunk_names(run_dir) == [
        "epoch-00000-000.parquet",
        "epoch-00001-000.parquet",
        "epoch-00002-000.parquet",
        "final-000.parquet",
    ]
    assert not (run_dir / "power.csv").exists()
    assert_one_time_line(run_dir)
    per_epoch = load_run(run_dir).trace.overview().epochs
    assert per_epoch["epoch"].tolist() == [0, 1, 2]
    assert per_epoch["power_w"].tolist() == pytest.approx([120.0] * 3)


def test_a_long_epoch_is_stored_in_parts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(trace, "PART_S", 0.0)  # a part after every step that has readings
    run_dir = tmp_path / "run"
    # each step lasts several sampling intervals, so every part has readings
    trainer.run_training(spec_of(tmp_path, epochs=1), run_dir, on_step=lambda _: time.sleep(0.05))
    parts = [n for n in chunk_names(run_dir) if n.startswith("epoch-00000-")]
    assert len(parts) >= 4  # 5 steps: a part after each, the rest at the epoch's end
    assert_one_time_line(run_dir)


def test_a_crash_before_the_checkpoint_resumes_without_doubled_readings(
    tmp_path: Path, monkeypatch
) -> None:
    """Epoch 1's row and chunk are stored, then its checkpoint fails: the resumed run trains
    epoch 1 again and stores its readings once."""
    spec = spec_of(tmp_path)
    run_dir = tmp_path / "run"
    real_save = checkpoint.save_checkpoint

    def fail_at_epoch_2(path, ctx, epochs_done):  # type: ignore[no-untyped-def]
        if epochs_done == 2:
            raise RuntimeError("disk gone")
        real_save(path, ctx, epochs_done)

    monkeypatch.setattr(trainer, "save_checkpoint", fail_at_epoch_2)
    assert trainer.run_training(spec, run_dir).status == "failed"
    assert chunk_names(run_dir) == [
        "epoch-00000-000.parquet",
        "epoch-00001-000.parquet",
        "final-000.parquet",
    ]
    kept = (run_dir / "power" / "epoch-00000-000.parquet").read_bytes()
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    assert trainer.run_training(spec, run_dir).status == "finished"
    assert chunk_names(run_dir) == [
        "epoch-00000-000.parquet",
        "epoch-00001-000.parquet",
        "epoch-00002-000.parquet",
        "final-000.parquet",
    ]
    assert (run_dir / "power" / "epoch-00000-000.parquet").read_bytes() == kept
    assert_one_time_line(run_dir)


def test_an_interrupted_run_resumes_keeping_its_finished_chunks(
    tmp_path: Path, monkeypatch
) -> None:
    spec = spec_of(tmp_path)
    run_dir = tmp_path / "run"

    def stop_after_epoch_1(row):  # type: ignore[no-untyped-def]
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.run_training(spec, run_dir, on_epoch=stop_after_epoch_1)
    before = {n: (run_dir / "power" / n).read_bytes() for n in chunk_names(run_dir)}
    assert sorted(before) == [
        "epoch-00000-000.parquet",
        "epoch-00001-000.parquet",
        "final-000.parquet",
    ]
    assert trainer.run_training(spec, run_dir).status == "finished"
    for name in ("epoch-00000-000.parquet", "epoch-00001-000.parquet"):
        assert (run_dir / "power" / name).read_bytes() == before[name]
    assert "epoch-00002-000.parquet" in chunk_names(run_dir)
    assert_one_time_line(run_dir)
