"""The model registry: builtin models by name and user factories (``package.module:callable``)."""

from .registry import MODEL_TASKS, MODELS, build_model, load_factory

__all__ = ["MODELS", "MODEL_TASKS", "build_model", "load_factory"]
