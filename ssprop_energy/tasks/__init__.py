"""Tasks as plug-ins: ``classification`` and ``generation`` built in; other packages add
theirs through the entry point group ``ssprop_energy.tasks`` (see docs/plugins.md)."""

from .base import (
    TASKS,
    AnyTaskConfig,
    Batch,
    EpochEnd,
    Task,
    TaskConfig,
    build_task,
    register_task,
)
from .classification import Classification, ClassificationConfig
from .generation import Generation, GenerationConfig

__all__ = [
    "TASKS",
    "AnyTaskConfig",
    "Batch",
    "Classification",
    "ClassificationConfig",
    "EpochEnd",
    "Generation",
    "GenerationConfig",
    "Task",
    "TaskConfig",
    "build_task",
    "register_task",
]
