"""SIGTERM and SIGHUP (what schedulers and closing terminals send) stop a sweep the way
Ctrl-C does: the current run is marked ``interrupted`` and keeps its finished epochs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; ``signum`` is its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_signal(exc: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: SIGINT for Ctrl-C."""
    return exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise Terminated in the main thread, once (a
    repeat while the run is being stopped is ignored); the old handlers return after it.
    A signal the process ignores (``nohup`` ignores SIGHUP) stays ignored. Outside the main
    thread (where Python allows no handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated(signum)

    old = {
        signum: signal.signal(signum, handler)
        for signum in STOP_SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, previous in old.items():
            signal.signal(signum, previous)
