"""epochs.csv grows by one line per epoch without being read again, and still refuses an
epoch another writer stored."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from ssprop_energy.store import RunStore, StoreConflict


def row(epoch: int) -> dict[str, object]:
    energy = math.nan if epoch == 1 else 3 * epoch
    return {"run_id": "r", "epoch": epoch, "keep": 0.5, "steps": 10, "energy_j_cpu": energy,
            "accuracy": 0.1 * epoch, "provenance_cpu": "measured", "time_s": 1.0,
            "energy_j": energy, "flops_total": 1e6}  # fmt: skip


def test_appended_rows_read_back_as_a_whole_rewrite(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "a")
    for epoch in range(4):
        store.append_epoch(row(epoch))
    whole = tmp_path / "b" / "epochs.csv"
    whole.parent.mkdir()
    pd.DataFrame([row(e) for e in range(4)]).to_csv(whole, index=False)
    stored = RunStore(tmp_path / "a").read_epochs()
    pd.testing.assert_frame_equal(stored, pd.read_csv(whole))
    assert stored["epoch"].tolist() == [0, 1, 2, 3]


def test_a_row_with_new_columns_rewrites_the_file(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append_epoch(row(0))
    store.append_epoch({**row(1), "extra": 1.5})
    stored = RunStore(tmp_path).read_epochs()
    assert list(stored.columns)[-1] == "extra" and stored["extra"].isna().tolist() == [True, False]


def test_an_epoch_another_writer_stored_is_refused(tmp_path: Path) -> None:
    mine, other = RunStore(tmp_path), RunStore(tmp_path)
    mine.append_epoch(row(0))
    other.append_epoch(row(1))  # another process, between two of mine
    with pytest.raises(StoreConflict, match="holds 2 epoch rows, so epoch 1 cannot be added"):
        mine.append_epoch(row(1))
    assert mine.append_epoch(row(2))["epoch"].tolist() == [0, 1, 2]


def test_gpu_state_columns_are_accepted_and_a_bad_reason_mask_is_damage(tmp_path: Path) -> None:
    from ssprop_energy.store import StoreDamaged

    health = {"gpu_temp_c_gpu0": 71.0, "sm_clock_mhz_gpu0": 1410.0,
              "power_limit_w_gpu0": 400.0, "throttle_reasons_gpu0": 0x44}  # fmt: skip
    store = RunStore(tmp_path / "ok")
    store.append_epoch({**row(0), **health})
    assert RunStore(tmp_path / "ok").read_epochs()["throttle_reasons_gpu0"].tolist() == [0x44]
    bad = RunStore(tmp_path / "bad")
    bad.append_epoch({**row(0), **health, "throttle_reasons_gpu0": -1})
    with pytest.raises(StoreDamaged, match="throttle_reasons_gpu0"):
        RunStore(tmp_path / "bad").read_epochs()


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("accuracy", 7.0, "row 2: accuracy 7 is outside [0, 1]"),
        ("energy_j", -1e9, "row 2: energy_j -1e+09 is outside [0, inf]"),
        ("flops_total", math.inf, "row 2: flops_total inf is not finite"),
        ("accuracy", None, "no column 'accuracy'"),
        ("energy_j", None, "no column 'energy_j'"),
        ("flops_total", None, "no column 'flops_total'"),
    ],
)
def test_epoch_figures_out_of_range_or_missing_make_the_run_damaged(
    tmp_path: Path, column: str, value: float | None, problem: str
) -> None:
    from ssprop_energy.store import load_run
    from tests.support.report_store import epoch_rows, write_run

    rows = epoch_rows("r", [0.5, 0.6], 100.0, 20.0, 8.0, 1e9, 1.0)
    if value is None:
        rows = rows.drop(columns=column)
    else:
        rows[column] = rows[column].astype(float)
        rows.loc[1, column] = value
    run_dir = write_run(tmp_path / "s", "r", method="dense", label="dense", seed=0, epochs=rows)
    if column == "accuracy" and value is None:  # accuracy is the task's; not required
        assert load_run(run_dir).damage is None
        return
    record = load_run(run_dir)
    assert record.status == "damaged"
    assert record.damage == f"{run_dir / 'epochs.csv'}: {problem}"


def test_a_zero_byte_estimate_is_damage_not_no_estimate(tmp_path: Path) -> None:
    from ssprop_energy.store import ESTIMATE, StoreDamaged
    from ssprop_energy.store.records import read_estimates

    (tmp_path / ESTIMATE).write_bytes(b"")
    with pytest.raises(StoreDamaged, match="empty \\(0 bytes\\), not an estimate"):
        read_estimates(tmp_path)
