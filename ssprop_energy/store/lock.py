"""Run ownership: one process trains a run at a time.

A run is claimed by creating its lock file (``run.lock``) atomically with ``O_CREAT | O_EXCL``;
it holds the owner's host, pid, start time and a random token, and the owner refreshes it
every ``LOCK_REFRESH_S`` seconds while the run trains. A lock is stale, and the next claim
takes it over, when its process is gone: on this host, its pid no longer runs, or runs a
process that started after the lock did (the pid was reused), or is this process's pid but not
one of its own locks; on any host, it was not refreshed for ``LOCK_STALE_AFTER_S`` seconds.
The claim's content is written before the lock exists (a temporary file, hard-linked into
place), so a lock never exists empty: one that does not parse (empty, cut off, garbage) is
left from a crash or damage, and is stale at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import psutil

from ..errors import UserError
from .atomic import atomic_write_text
from .schema import LOCK

LOCK_REFRESH_S = 30.0
"""How often the owner of a run refreshes its lock while the run trains."""
LOCK_STALE_AFTER_S = 600.0
"""A lock not refreshed for this long is stale, whatever host holds it."""
PID_START_TOLERANCE_S = 2.0
"""Slack on a process's start time (psutil derives it from the boot time, good to ~1 s)."""

_HELD: set[str] = set()
"""Tokens of the locks this process holds."""


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its owner (times in seconds since the epoch)."""

    host: str
    pid: int
    started_at: float
    refreshed_at: float
    token: str
    unreadable: str | None = None
    """Why the lock file does not parse (it is then stale at once); None for a sound lock."""

    def describe(self) -> str:
        if self.unreadable is not None:
            return f"an unreadable lock ({self.unreadable})"
        since = datetime.fromtimestamp(self.started_at, UTC).isoformat(timespec="seconds")
        return f"pid {self.pid} on {self.host} since {since}"


class RunClaimed(Exception):
    """Another live process holds the run."""

    def __init__(self, run_dir: Path, holder: LockInfo) -> None:
        super().__init__(f"{run_dir}: claimed by {holder.describe()}")
        self.holder = holder


def _pid_holds(pid: int, since: float) -> bool:
    """True when ``pid`` runs a process that was already running at ``since``."""
    if pid <= 0:  # not a process (0 and below address process groups)
        return False
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # another user's process we may not inspect: assume it is the owner
        return True
    return started <= since + PID_START_TOLERANCE_S


def _content(info: LockInfo) -> str:
    """The lock file's JSON (the fields ``host`` to ``token``)."""
    return json.dumps({k: v for k, v in asdict(info).items() if k != "unreadable"})


def _why_unreadable(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return "gone"
    return "empty" if size == 0 else "not a lock's JSON"


def _parse(path: Path) -> LockInfo | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return LockInfo(
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            started_at=float(raw["started_at"]),
            refreshed_at=float(raw["refreshed_at"]),
            token=str(raw["token"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


def read_lock(run_dir: Path | str) -> LockInfo | None:
    """The run's lock, None when there is none; an unreadable one is dated by its mtime."""
    path = Path(run_dir) / LOCK
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return _parse(path) or LockInfo("", 0, mtime, mtime, "", unreadable=_why_unreadable(path))


def is_stale(info: LockInfo, now: float | None = None) -> bool:
    """True when the lock's process is gone (see the module docstring for the rule)."""
    now = time.time() if now is None else now
    if info.unreadable is not None:
        return True
    if now - info.refreshed_at > LOCK_STALE_AFTER_S:
        return True
    if info.host != socket.gethostname():
        return False
    if info.pid == os.getpid():
        return info.token not in _HELD
    return not _pid_holds(info.pid, info.started_at)


def live_holder(run_dir: Path | str) -> LockInfo | None:
    """The process that holds the run now; None when it is free or its lock is stale."""
    info = read_lock(run_dir)
    return info if info is not None and not is_stale(info) else None


class RunLock:
    """The claim on one run folder; use ``RunLock.claim`` and then ``with lock:`` to keep it
    refreshed while the run trains, released at the end."""

    def __init__(self, run_dir: Path, info: LockInfo) -> None:
        self.path = run_dir / LOCK
        self.info = info
        self.note: str | None = None
        """A line for the user when the claim took over an unreadable lock."""
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @classmethod
    def claim(cls, run_dir: Path | str) -> RunLock:
        """Claim the run (creating its folder); RunClaimed when a live process holds it."""
        run_dir = Path(run_dir)
        note = None
        for _ in range(3):
            now = time.time()
            info = LockInfo(socket.gethostname(), os.getpid(), now, now, uuid.uuid4().hex)
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                _create(run_dir / LOCK, _content(info), info.token)
            except FileExistsError:
                holder = read_lock(run_dir)
                if holder is not None and not is_stale(holder):
                    raise RunClaimed(run_dir, holder) from None
                if holder is not None:
                    _take_over(run_dir / LOCK, holder)
                    if holder.unreadable is not None:
                        note = f"{run_dir / LOCK}: {holder.describe()}, taken over as stale"
                continue
            except OSError as exc:
                raise UserError(f"{run_dir}: cannot write results here ({exc.strerror})") from None
            _HELD.add(info.token)
            lock = cls(run_dir, info)
            lock.note = note
            return lock
        holder = read_lock(run_dir)
        raise RunClaimed(run_dir, holder or LockInfo("?", 0, time.time(), time.time(), ""))

    def owned(self) -> bool:
        """True while the lock file is still this claim's."""
        current = read_lock(self.path.parent)
        return current is not None and current.token == self.info.token

    def refresh(self) -> None:
        """Stamp the lock with the time now (nothing if another process took it over)."""
        if self.owned():
            self.info = LockInfo(**{**asdict(self.info), "refreshed_at": time.time()})
            atomic_write_text(self.path, _content(self.info))

    def _beat(self) -> None:
        while not self._stop.wait(LOCK_REFRESH_S):
            try:
                self.refresh()
            except Exception:  # a failed refresh makes the lock look stale later, no more
                continue

    def release(self) -> None:
        """Stop refreshing and remove the lock file if it is still this claim's."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        if self.owned():
            self.path.unlink(missing_ok=True)
        _HELD.discard(self.info.token)

    def __enter__(self) -> RunLock:
        self._heartbeat = threading.Thread(target=self._beat, name="run-lock", daemon=True)
        self._heartbeat.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _create(path: Path, text: str, token: str) -> None:
    """Create the lock ``path`` holding ``text``, or FileExistsError: the text goes to a
    temporary file first, hard-linked to ``path`` (a link, like ``O_EXCL``, fails when the name
    exists), so the lock never exists without its content. Where the file system has no hard
    links, ``O_CREAT | O_EXCL`` and a write."""
    temp = path.with_name(f".{path.name}.{token}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        try:
            os.link(temp, path)
            return
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network and FUSE file systems)
            pass
    finally:
        temp.unlink(missing_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _take_over(path: Path, stale: LockInfo) -> None:
    """Remove the stale lock ``stale``; a lock that changed since it was judged stale (a new
    owner's) is put back."""
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = _parse(aside)
    if moved is not None and moved.token != stale.token:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)
