"""Nothing lost, nothing doubled: run ownership, safe names, a record of every run, signals,
fatal errors and damaged stores, each with the example that used to go wrong."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ssprop_energy.cli import app, profile_cmd
from ssprop_energy.errors import UserError
from ssprop_energy.harness.config import load_config
from ssprop_energy.harness.run import trainer
from ssprop_energy.harness.runs import plan_runs
from ssprop_energy.harness.sweep.runner import run_sweep
from ssprop_energy.store import LOCK, LOCK_STALE_AFTER_S, load_run, load_sweep
from tests.support.harness_configs import tiny_config, write_config

runner = CliRunner()


def _profile(*args: str):
    return runner.invoke(app, ["profile", *args])


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _write_lock(run_dir: Path, host: str, pid: int, refreshed_at: float) -> str:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"host": host, "pid": pid, "started_at": refreshed_at,
                       "refreshed_at": refreshed_at, "token": "someone-else"})  # fmt: skip
    (run_dir / LOCK).write_text(text)
    return text


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# 1. run ownership


def test_two_sweeps_on_one_store_train_each_epoch_once(tmp_path: Path, monkeypatch) -> None:
    cfg = load_config(write_config(tmp_path))
    first, second = (spec.run_id for spec in plan_runs(cfg))
    real = trainer.train_epoch
    waiting, go_on = threading.Event(), threading.Event()

    def held_up(ctx, spec, meter, epoch, on_step=None):
        if threading.current_thread().name == "other":  # the other sweep holds its first run
            waiting.set()
            go_on.wait(60)
        return real(ctx, spec, meter, epoch, on_step)

    monkeypatch.setattr(trainer, "train_epoch", held_up)
    other = threading.Thread(target=run_sweep, args=(cfg,), name="other")
    other.start()
    assert waiting.wait(60)
    mine = run_sweep(cfg)
    go_on.set()
    other.join(120)
    assert mine.claimed == [first] and [o.run_id for o in mine.outcomes] == [second]
    for record in load_sweep(tmp_path / "runs" / "tiny"):
        assert record.status == "finished"
        assert record.epochs["epoch"].tolist() == [0, 1] and record.meta.epochs_done == 2
        assert not (record.path / LOCK).exists()


def test_a_run_held_by_a_live_process_is_skipped_and_the_matrix_goes_on(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first, second = (spec.run_id for spec in plan_runs(load_config(config)))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run_dir = tmp_path / "runs" / "tiny" / first
        lock = _write_lock(run_dir, socket.gethostname(), holder.pid, time.time())
        result = _profile(str(config))
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0, result.output
    assert f"[run 1/2 {first}] skipped: claimed by pid {holder.pid} on " in result.output
    assert [r.run_id for r in load_sweep(tmp_path / "runs" / "tiny")] == [second]
    assert (run_dir / LOCK).read_text() == lock


@pytest.mark.parametrize(
    ("host", "age_s", "taken_over"),
    [
        ("this", 0.0, True),  # this host, its process is gone
        ("elsewhere", 2 * LOCK_STALE_AFTER_S, True),  # another host, not refreshed for long
        ("elsewhere", 0.0, False),  # another host, refreshed just now
    ],
)
def test_a_stale_lock_is_taken_over(tmp_path: Path, host: str, age_s: float, taken_over) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}])
    (spec,) = plan_runs(load_config(config))
    run_dir = tmp_path / "runs" / "tiny" / spec.run_id
    host = socket.gethostname() if host == "this" else "elsewhere.example"
    _write_lock(run_dir, host, _dead_pid(), time.time() - age_s)
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 0, result.output
    assert is_trained(run_dir) == taken_over
    assert (run_dir / LOCK).exists() != taken_over


@pytest.mark.parametrize(
    ("content", "why"), [(b"", "empty"), (b'{"host": "a", "pi', "not a lock's JSON")]
)
def test_an_unreadable_lock_is_stale_at_once_with_a_line(tmp_path: Path, content, why) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}])
    (spec,) = plan_runs(load_config(config))
    run_dir = tmp_path / "runs" / "tiny" / spec.run_id
    run_dir.mkdir(parents=True)
    (run_dir / LOCK).write_bytes(content)  # left by a crash, or damaged
    result = _profile(str(config))
    assert result.exit_code == 0, result.output
    assert (
        f"[run 1/1 {spec.run_id}] {run_dir / LOCK}: an unreadable lock ({why}), taken over as "
        "stale" in result.output
    )
    assert "claimed by pid 0" not in result.output
    assert is_trained(run_dir) and not (run_dir / LOCK).exists()


def test_a_crash_while_the_claim_is_written_leaves_no_lock(tmp_path: Path, monkeypatch) -> None:
    from ssprop_energy.store import RunLock, lock

    class Crashing:
        loads = staticmethod(json.loads)

        @staticmethod
        def dumps(*args, **kwargs):
            raise KeyboardInterrupt  # the process dies while it writes its claim

        dump = dumps

    monkeypatch.setattr(lock, "json", Crashing)
    with pytest.raises(KeyboardInterrupt):
        RunLock.claim(tmp_path / "run")
    assert not (tmp_path / "run" / LOCK).exists()
    assert not [p for p in (tmp_path / "run").iterdir()]  # no temporary file either


def test_a_lock_whose_pid_was_reused_is_stale(tmp_path: Path) -> None:
    from ssprop_energy.store import live_holder

    newcomer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:  # the same pid, once for a lock older than its process, once for a newer one
        _write_lock(tmp_path, socket.gethostname(), newcomer.pid, time.time() - 60)
        assert live_holder(tmp_path) is None
        _write_lock(tmp_path, socket.gethostname(), newcomer.pid, time.time())
        assert live_holder(tmp_path) is not None
    finally:
        newcomer.kill()
        newcomer.wait()


def is_trained(run_dir: Path) -> bool:
    return (run_dir / "meta.json").exists() and load_run(run_dir).status == "finished"


def test_a_second_copy_of_an_epoch_is_refused(tmp_path: Path) -> None:
    from ssprop_energy.store import RunStore, StoreConflict

    store = RunStore(tmp_path)
    row = {"run_id": "r", "epoch": 0, "energy_j": 1.0, "time_s": 1.0, "flops_total": 1e6}
    store.append_epoch(row)
    with pytest.raises(StoreConflict, match="holds 1 epoch rows, so epoch 0 cannot be added"):
        store.append_epoch(row)
    assert store.read_epochs()["epoch"].tolist() == [0]


def test_the_lock_is_refreshed_while_held_and_released_after(tmp_path: Path, monkeypatch) -> None:
    from ssprop_energy.store import RunLock, live_holder, lock

    monkeypatch.setattr(lock, "LOCK_REFRESH_S", 0.01)
    with RunLock.claim(tmp_path) as held:
        started = held.info.refreshed_at
        time.sleep(0.2)
        info = live_holder(tmp_path)
        assert info is not None and info.pid == os.getpid() and info.refreshed_at > started
    assert not (tmp_path / LOCK).exists() and live_holder(tmp_path) is None


# 2. names


def test_a_name_that_leaves_the_output_folder_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "work", name="..")
    (tmp_path / "work" / "summary.csv").write_text("mine\n")
    before = config.read_text()
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 2
    assert "name: must be a folder name" in _one_line(result)
    assert (
        config.read_text() == before and (tmp_path / "work" / "summary.csv").read_text() == "mine\n"
    )


def test_a_name_that_resolves_outside_the_output_folder_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, name="elsewhere")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "elsewhere").symlink_to(tmp_path)
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 2
    assert "outside the output folder" in _one_line(result)
    assert not (tmp_path / "config.yaml").exists()


# 3. every run leaves a record; data is checked when loaded


def test_a_run_that_crashes_before_its_first_epoch_is_recorded(tmp_path: Path, monkeypatch):
    config = write_config(tmp_path, methods=[{"name": "dense"}])

    def crash(ctx, spec):
        raise IndexError("Target -1 is out of bounds.")

    monkeypatch.setattr(trainer, "warm_up", crash)
    result = _profile(str(config))
    assert result.exit_code == 1, result.output
    assert "failed after 0 epochs: IndexError: Target -1 is out of bounds." in result.output
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert run.status == "failed" and run.meta.epochs_done == 0
    assert run.meta.error == "IndexError: Target -1 is out of bounds."
    report = runner.invoke(app, ["report", str(tmp_path / "runs" / "tiny")])
    assert "failed: IndexError: Target -1 is out of bounds." in report.output


BAD_DATA = {
    "labels out of range": (
        np.zeros((20, 8, 8)),
        np.arange(20) % 3 - 1,
        "y: labels must be in [0, classes), got -1",
    ),
    "string labels": (
        np.zeros((20, 8, 8)),
        np.array(["a", "b"] * 10),
        "y must hold numbers, got <U1 values",
    ),
    "empty arrays": (np.zeros((0, 8, 8)), np.zeros(0, dtype=int), "x is empty"),
    "NaN pixels": (
        np.full((20, 8, 8), np.nan),
        np.arange(20) % 2,
        "x holds 1280 pixels that are NaN or infinite",
    ),
    "one class": (
        np.ones((20, 8, 8)),
        np.zeros(20, dtype=int),
        "y: every label is 0; a data set needs at least two classes",
    ),
    "fractional labels": (
        np.ones((20, 8, 8)),
        np.arange(20) / 2,
        "y: labels must be integers, got 0.5",
    ),
    "one label far above the others": (
        np.ones((200, 8, 8)),
        np.r_[np.arange(199) % 3, 1_000_000],
        "y: labels run up to 1000000 but only 4 distinct labels occur (a model of 1000001 "
        "outputs, 999997 of them for classes without a sample); set data.classes to the class "
        "count, or number the labels 0 to 3",
    ),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_with_one_line(tmp_path: Path, case: str) -> None:
    x, y, message = BAD_DATA[case]
    np.savez(tmp_path / "data.npz", x=x, y=y)
    config = tiny_config(tmp_path)
    config["data"] = {"name": "npz", "path": str(tmp_path / "data.npz"), "batch_size": 16}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(config))
    result = _profile(str(tmp_path / "model.yaml"), "--quiet")
    assert result.exit_code == 2
    assert _one_line(result) == f"error: data.path: {tmp_path / 'data.npz'}: {message}"
    assert not any((tmp_path / "runs" / "tiny").glob("*/meta.json"))


def test_labels_outside_the_configured_class_count_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", x=np.ones((20, 8, 8)), y=np.arange(20) % 4)
    data = {"name": "npz", "path": str(tmp_path / "data.npz"), "classes": 3}
    result = _profile(str(write_config(tmp_path, data=data)), "--quiet")
    assert result.exit_code == 2
    assert _one_line(result) == (
        f"error: data.path: {tmp_path / 'data.npz'}: "
        "y: labels must be in [0, 3) (data.classes: 3), got 3"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty (0 bytes), not an .npz file"),
        (
            b"x,y\n1,2\n",
            "not an .npz file (numpy.savez writes a zip archive of the arrays x and y)",
        ),
        (b"PK\x03\x04 cut short", "not a readable .npz file (File is not a zip file)"),
    ],
)
def test_an_empty_or_foreign_data_file_is_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "data.npz").write_bytes(content)
    data = {"name": "npz", "path": str(tmp_path / "data.npz")}
    result = _profile(str(write_config(tmp_path, data=data)), "--quiet")
    assert result.exit_code == 2
    assert _one_line(result) == f"error: data.path: {tmp_path / 'data.npz'}: {message}"


# 4. signals and fatal errors


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_termination_signal_ends_the_run_like_ctrl_c(tmp_path, monkeypatch, signum, code):
    monkeypatch.setattr(signal, "getsignal", _not_ignored(signal.getsignal))
    before = signal.getsignal(signum)
    config = write_config(tmp_path, train={"epochs": 3}, methods=[{"name": "dense"}])
    real = trainer.train_epoch

    def signalled(ctx, spec, meter, epoch, on_step=None):
        if epoch == 1:
            os.kill(os.getpid(), signum)
        return real(ctx, spec, meter, epoch, on_step)

    monkeypatch.setattr(trainer, "train_epoch", signalled)
    result = _profile(str(config))
    assert result.exit_code == code
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    name = signal.Signals(signum).name
    assert f"interrupted by {name}: run {run.run_id} keeps its finished epochs" in result.output
    assert run.meta.status == "interrupted" and run.meta.epochs_done == 1
    assert run.epochs["epoch"].tolist() == [0] and not list(run.path.glob(".*"))
    assert signal.getsignal(signum) is before  # the handler is gone after the sweep


def _not_ignored(getsignal):  # type: ignore[no-untyped-def]
    """``signal.getsignal`` as if no signal were ignored (the suite may run under nohup)."""
    return lambda signum: (
        signal.SIG_DFL if getsignal(signum) is signal.SIG_IGN else getsignal(signum)
    )


def test_an_ignored_hangup_stays_ignored(tmp_path, monkeypatch) -> None:
    config = write_config(tmp_path, train={"epochs": 2}, methods=[{"name": "dense"}])
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        real = trainer.train_epoch

        def hung_up(ctx, spec, meter, epoch, on_step=None):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGHUP)
            return real(ctx, spec, meter, epoch, on_step)

        monkeypatch.setattr(trainer, "train_epoch", hung_up)
        result = _profile(str(config))
        assert result.exit_code == 0, result.output
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.slow
def test_a_real_sigterm_stops_a_profile_process(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"epochs": 50}, methods=[{"name": "dense"}])
    command = [sys.executable, "-c", "from ssprop_energy.cli import main; main()"]
    child = subprocess.Popen([*command, "profile", str(config)], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_path / "runs" / "tiny").glob("*/epochs.csv")):
        assert time.time() < deadline and child.poll() is None
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=120)
    assert child.returncode == 143
    assert "interrupted by SIGTERM" in output
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert run.meta.status == "interrupted" and run.meta.epochs_done == len(run.epochs)
    assert not (run.path / LOCK).exists() and not list(run.path.glob(".*.tmp"))


def test_a_full_disk_marks_the_run_failed_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from ssprop_energy.harness.run import checkpoint

    config = write_config(tmp_path, methods=[{"name": "dense"}])

    def disk_full(obj, fh):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 2
    assert _one_line(result).endswith("checkpoint.pt: cannot write (No space left on device)")
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    assert run.status == "failed" and "No space left on device" in run.meta.error
    assert run.meta.epochs_done == len(run.epochs) == 1
    assert {p.name for p in run.path.iterdir()} <= {"epochs.csv", "meta.json", "power"}
    assert not list(run.path.rglob(".*.tmp"))


# 5. damaged stores and odd input


def test_a_damaged_meta_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    config = write_config(tmp_path, seeds=[0, 1], methods=[{"name": "dense"}])
    assert _profile(str(config), "--quiet").exit_code == 0
    sweep = tmp_path / "runs" / "tiny"
    damaged, kept = load_sweep(sweep)
    meta = damaged.path / "meta.json"
    meta.write_text("[1, 2]")  # valid JSON, not an object
    report = runner.invoke(app, ["report", str(sweep)])
    assert report.exit_code == 3, report.output  # written, but a run is damaged
    problem = f"{meta}: not a JSON object (got list)"
    assert f"note: damaged, left out: {problem}" in report.output
    meta.write_text("{}")
    again = _profile(str(config))
    assert again.exit_code == 1
    problem = f"{meta}: run_id: field required"
    assert f"{damaged.run_id}] not touched: damaged ({problem}); to train it again" in again.output
    assert meta.read_text() == "{}"
    assert load_run(kept.path).meta.finished_at == kept.meta.finished_at
    rerun = _profile(str(config), "--quiet", "--only", damaged.run_id)
    assert rerun.exit_code == 0 and load_run(damaged.path).status == "finished"


def test_only_never_deletes_through_a_symlinked_run_folder(tmp_path: Path) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}], train={"epochs": 1})
    assert _profile(str(config), "--quiet").exit_code == 0
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("not the tool's")
    shutil.rmtree(run.path)
    run.path.symlink_to(foreign, target_is_directory=True)
    result = _profile(str(config), "--quiet", "--only", run.run_id)
    assert result.exit_code == 2
    assert _one_line(result) == (
        f"error: {run.path}: a symbolic link (to {foreign}), not a run's own folder: --only "
        "never moves or deletes files through a link; remove the link and run again"
    )
    assert [p.name for p in foreign.iterdir()] == ["precious.txt"]
    assert (foreign / "precious.txt").read_text() == "not the tool's"


def test_put_back_removes_a_link_inside_a_run_never_its_target(tmp_path: Path) -> None:
    from ssprop_energy.harness.sweep.replace import put_back, set_aside

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("x")
    run_dir = tmp_path / "sweep" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "meta.json").write_text("{}")
    aside = set_aside(run_dir)
    (run_dir / "power").symlink_to(foreign, target_is_directory=True)  # the new run's files
    put_back(run_dir, aside)
    assert (foreign / "precious.txt").exists() and not (run_dir / "power").exists()
    assert [p.name for p in run_dir.iterdir()] == ["meta.json"]


def test_damaged_killed_and_doubled_runs_read_as_such(tmp_path: Path) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}])
    assert _profile(str(config), "--quiet").exit_code == 0
    (run,) = load_sweep(tmp_path / "runs" / "tiny")
    meta, epochs = run.path / "meta.json", run.path / "epochs.csv"
    text, rows = epochs.read_text(), epochs.read_text().splitlines(keepends=True)
    epochs.write_text(text[: -len(rows[-1]) // 2])  # cut in the middle of the last row
    assert load_run(run.path).status == "damaged"
    assert (
        load_run(run.path).damage == f"{epochs}: the last line is cut off (the file is truncated)"
    )
    epochs.write_text("".join([rows[0], rows[1], rows[1], rows[2]]))  # two writers' rows
    assert load_run(run.path).damage == f"{epochs}: row 2: epoch 0 appears twice"
    epochs.write_text(text)
    meta.write_text('{"run_id": ')
    assert str(load_run(run.path).damage).startswith(f"{meta}: not valid JSON")
    meta.write_text(json.dumps({**run.meta.to_json(), "epochs_done": 3}))
    assert (
        load_run(run.path).damage
        == f"{epochs}: holds 2 epoch rows, but meta.json says epochs_done 3"
    )
    meta.write_text(json.dumps({**run.meta.to_json(), "status": "running"}))  # killed: no lock
    killed = load_run(run.path)
    assert killed.status == "interrupted" and "no live process holds the run" in str(killed.note)


def test_a_report_that_cannot_be_written_fails_the_command(tmp_path, monkeypatch) -> None:
    config = write_config(tmp_path, methods=[{"name": "dense"}])

    def disk_full(sweep_dir):
        raise UserError(f"{sweep_dir}/report.html: cannot write (No space left on device)")

    monkeypatch.setattr(profile_cmd, "sweep_report", disk_full)
    result = _profile(str(config), "--quiet")
    assert result.exit_code == 2
    assert "error: report not written: " in result.output
