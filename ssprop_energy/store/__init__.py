"""The results store: paths, typed schemas, run statuses, phases, one atomic writer, read and
write. The harness writes it, the reports read it; it imports neither."""

from .atomic import atomic_write, atomic_write_csv, atomic_write_json, atomic_write_text
from .records import RunRecord, RunStore, is_run_dir, load_run, load_sweep, read_meta
from .schema import (
    CHECKPOINT,
    CONFIG,
    ENDED,
    EPOCHS,
    FINISHED,
    FLOPS_OF_PHASE,
    GATES,
    INFERENCE,
    META,
    NO_SETUP,
    PHASES,
    POWER,
    SETTLED,
    WEIGHTS,
    RunMeta,
    Status,
    setup_label,
)

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "ENDED",
    "EPOCHS",
    "FINISHED",
    "FLOPS_OF_PHASE",
    "GATES",
    "INFERENCE",
    "META",
    "NO_SETUP",
    "PHASES",
    "POWER",
    "SETTLED",
    "WEIGHTS",
    "RunMeta",
    "RunRecord",
    "RunStore",
    "Status",
    "atomic_write",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "is_run_dir",
    "load_run",
    "load_sweep",
    "read_meta",
    "setup_label",
]
