"""Tasks as plug-ins: ``classification`` built in; other packages add theirs through the entry
point group ``ssprop_energy.tasks`` (see docs/plugins.md)."""

from .base import TASKS, AnyTaskConfig, Batch, Task, TaskConfig, build_task, register_task
from .classification import Classification, ClassificationConfig

__all__ = [
    "TASKS",
    "AnyTaskConfig",
    "Batch",
    "Classification",
    "ClassificationConfig",
    "Task",
    "TaskConfig",
    "build_task",
    "register_task",
]
