"""CPU contention while a run trains: the CPU time of this process and its children, and the
CPU time every other process on the machine used meanwhile (psutil)."""

from __future__ import annotations

import psutil

from ...store import CONTENTION_COLUMNS


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all logical CPUs."""
    times = psutil.cpu_times()
    # on Linux, guest time is already counted in user and nice time
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def tree_cpu_s(process: psutil.Process) -> float:
    """CPU seconds of ``process``, its ended (waited-for) children, and its live descendants."""
    own = process.cpu_times()
    seconds = own.user + own.system + own.children_user + own.children_system
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended between the listing and the read
            continue
        seconds += times.user + times.system
    return seconds


class CpuContention:
    """``start()`` marks the machine's and this process tree's CPU time; ``lap()`` returns
    what each used since, as the columns ``CONTENTION_COLUMNS`` of an epoch row:
    ``cpu_s_own``, ``cpu_s_other`` (every other process) and ``cpu_load_other`` (that as a
    share of the machine's CPU time, all logical CPUs: 0 to 1)."""

    def __init__(self, process: psutil.Process | None = None) -> None:
        self.process = process or psutil.Process()
        self.start()

    def _read(self) -> tuple[float, float, float]:
        busy, total = machine_cpu_s()
        return busy, total, tree_cpu_s(self.process)

    def start(self) -> None:
        self.mark = self._read()

    def lap(self) -> dict[str, float]:
        (busy, total, own), (busy0, total0, own0) = self._read(), self.mark
        self.mark = (busy, total, own)
        own_s = max(own - own0, 0.0)
        other_s = max(busy - busy0 - own_s, 0.0)
        capacity = total - total0
        load = min(other_s / capacity, 1.0) if capacity > 0 else 0.0
        return dict(zip(CONTENTION_COLUMNS, (own_s, other_s, load), strict=True))
