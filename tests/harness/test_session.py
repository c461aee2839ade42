"""RunSession's one rule for how a run ends, and an epoch row without a failed source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ssprop_energy.errors import UserError
from ssprop_energy.harness.run.epoch import without_sources
from ssprop_energy.harness.run.faults import MAX_NOTES, FaultNotes, LostSources, MeterFault
from ssprop_energy.harness.run.session import RunDiverged, RunSession
from ssprop_energy.store import PHASES, RunMeta, StoreConflict


def session(tmp_path: Path, contain: bool = True) -> RunSession:
    meta = RunMeta(
        run_id="r", sweep="s", method="dense", method_label="dense", method_params={},
        task="classification", primary_metric="accuracy", higher_is_better=True, seed=0,
        setup={}, run_config={}, epochs_planned=1, mean_keep_planned=None,
        flops_per_step={}, started_at="now",
    )  # fmt: skip
    return RunSession(tmp_path / "r", meta, contain=contain)


@pytest.mark.parametrize(
    ("exc", "status", "contained"),
    [
        (None, "finished", False),
        (RunDiverged("loss became nan"), "diverged", True),
        (KeyboardInterrupt(), "interrupted", False),
        (RuntimeError("boom"), "failed", True),
        (UserError("bad input"), "failed", False),
    ],
)
def test_an_exception_gives_the_status_once(
    tmp_path: Path, exc: BaseException | None, status: str, contained: bool
) -> None:
    run = session(tmp_path)
    run.run_dir.mkdir()
    assert run.finish(exc, 0) is contained
    meta = json.loads((run.run_dir / "meta.json").read_text())
    assert meta["status"] == run.status == status


def test_a_store_conflict_leaves_the_run_to_the_other_process(tmp_path: Path) -> None:
    run = session(tmp_path)
    run.run_dir.mkdir()
    assert run.finish(StoreConflict("epoch 2 is stored already"), 0) is False
    assert not (run.run_dir / "meta.json").exists()


def test_a_session_that_does_not_contain_lets_every_exception_go_on(tmp_path: Path) -> None:
    run = session(tmp_path, contain=False)
    run.run_dir.mkdir()
    assert run.finish(RuntimeError("boom"), 0) is False and run.status == "failed"


def test_notes_keep_the_first_faults_and_count_the_rest() -> None:
    notes = FaultNotes()
    with pytest.warns(RuntimeWarning):
        for i in range(MAX_NOTES + 3):
            notes.note(f"fault {i}")
        notes.meter([MeterFault("gpu0", "lost", 1)])
        notes.meter([MeterFault("gpu0", "lost", 5)])
    stored = notes.stored()
    assert len(stored) == MAX_NOTES + 1 and stored[-1] == "4 more distinct faults"
    assert notes.lines[-1] == "gpu0: lost (5x)"


def test_a_source_is_lost_while_its_faults_grow() -> None:
    lost = LostSources()
    assert lost.since_last([MeterFault("gpu0", "lost", 2)]) == {"gpu0"}
    assert lost.since_last([MeterFault("gpu0", "lost", 2)]) == set()
    assert lost.since_last([MeterFault("gpu0", "lost", 3)]) == {"gpu0"}


def test_a_row_without_a_failed_source_sums_the_others() -> None:
    row = {"energy_j": 30.0, "emissions_kg": 1.0}
    for s, joules in (("gpu0", 10.0), ("cpu", 20.0)):
        row[f"energy_j_{s}"] = joules
        row[f"provenance_{s}"] = "measured"
        for phase in PHASES:
            row[f"energy_j_{phase}_{s}"] = joules / len(PHASES)
    for phase in PHASES:
        row[f"energy_j_{phase}"] = 30.0 / len(PHASES)
    out = without_sources(row, {"gpu0"}, ["gpu0", "cpu"], lambda j: j / 1000)
    assert out["provenance_gpu0"] == "unavailable" and math.isnan(out["energy_j_gpu0"])
    assert out["energy_j"] == 20.0 and out["emissions_kg"] == 0.02
    assert out[f"energy_j_{PHASES[0]}"] == pytest.approx(20.0 / len(PHASES))
    assert out["provenance_cpu"] == "measured"
    assert without_sources(row, set(), ["gpu0", "cpu"], lambda j: j) is row
