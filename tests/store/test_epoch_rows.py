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
            "accuracy": 0.1 * epoch, "provenance_cpu": "measured"}  # fmt: skip


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
