"""Measure a training loop one already has: ``RunRecorder`` for a plain loop, callbacks for
PyTorch Lightning (``integrations.lightning``) and Hugging Face ``transformers``
(``integrations.transformers``), each writing a run of the results store. The callbacks'
libraries are optional extras, imported only by their own modules."""

from .recorder import RunRecorder

__all__ = ["RunRecorder"]
