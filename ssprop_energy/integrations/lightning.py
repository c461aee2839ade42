"""``EnergyCallback`` for PyTorch Lightning: a ``Trainer.fit`` recorded as a run of the
results store (``pip install 'ssprop-energy[lightning]'``).

Phases, from Lightning's hooks (automatic optimization):

- ``data``: ``on_train_batch_end`` (or the epoch's start) to ``on_train_batch_start``:
  fetching the batch and moving it to the device;
- ``forward``: ``on_train_batch_start`` to ``on_before_backward``: ``training_step`` and
  ``zero_grad``;
- ``backward``: ``on_before_backward`` to ``on_after_backward``;
- ``optimizer``: ``on_after_backward`` to ``on_train_batch_end``: gradient clipping, the
  optimizer step and a per-step LR scheduler;
- ``eval``: ``on_validation_start`` to ``on_validation_end`` (not the sanity check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .batches import samples_in
from .optional import require
from .recorder import RunRecorder

pl = require("lightning.pytorch", "lightning")

ACCURACY_NAMES = ("val_acc", "val_accuracy")
"""Logged validation metrics stored as the ``accuracy`` column by default."""


def _loss(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class EnergyCallback(pl.Callback):  # type: ignore[misc,name-defined]
    """Records ``trainer.fit`` as a run: the arguments are ``RunRecorder``'s (the model is
    the LightningModule being fitted; ``epochs`` defaults to ``max_epochs``).

    ``scheduler``: a ``DropScheduler`` applied at every training step. ``metrics``: logged
    validation metric -> epoch column, e.g. ``{"val_acc": "accuracy"}``; default: every
    logged metric whose name starts with ``val``, ``val_acc`` and ``val_accuracy`` stored as
    ``accuracy``. After fitting, ``run_dir`` is the run's folder.
    """

    def __init__(
        self,
        out_dir: Path | str,
        sweep: str,
        method_label: str,
        seed: int,
        *,
        example_input: torch.Tensor | Sequence[torch.Tensor],
        metrics: Mapping[str, str] | None = None,
        **recorder: Any,
    ) -> None:
        super().__init__()
        self._args = (out_dir, sweep, method_label, seed)
        self._example = example_input
        self._metrics = metrics
        self._options = recorder
        self.recorder: RunRecorder | None = None
        self.run_dir: Path | None = None
        self._eval_samples = 0
        self._evaluation: dict[str, Any] = {}

    # -- the recorder's lifetime ----------------------------------------------------------

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        options = dict(self._options)
        if trainer.max_epochs and trainer.max_epochs > 0:
            options.setdefault("epochs", trainer.max_epochs)
        self.recorder = RunRecorder(
            *self._args,
            model=pl_module,
            example_input=self._example,
            recorded_by="lightning",
            **options,
        )
        self.run_dir = self.recorder.run_dir
        self.recorder.__enter__()

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._close(None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close(exception)

    def _close(self, exception: BaseException | None) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        recorder.switch_phase(None)
        if exception is None:
            recorder.__exit__(None, None, None)
        else:
            recorder.__exit__(type(exception), exception, exception.__traceback__)

    # -- phases ----------------------------------------------------------------------------

    def _phase(self) -> str | None:
        return None if self.recorder is None else self.recorder.switched_phase

    def _switch(self, phase: str | None) -> None:
        if self.recorder is not None:
            self.recorder.switch_phase(phase)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._switch("data")

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        self._switch("forward")

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:
        self._switch("backward")

    def on_after_backward(self, trainer: Any, pl_module: Any) -> None:
        self._switch("optimizer")

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.recorder is None:
            return
        self._switch(None)
        self.recorder.end_step(_loss(outputs), samples_in(batch))
        self._switch("data")

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._switch("eval")

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._eval_samples += samples_in(batch) or 0

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self._phase() != "eval":
            return
        self._switch(None)
        self._evaluation = self._validation_metrics(trainer.callback_metrics)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.recorder is None:
            return
        self._switch(None)
        self.recorder.end_epoch(self._evaluation, self._eval_samples)
        self._evaluation, self._eval_samples = {}, 0

    def _validation_metrics(self, logged: Mapping[str, Any]) -> dict[str, Any]:
        if self._metrics is not None:
            chosen = {
                column: logged[name] for name, column in self._metrics.items() if name in logged
            }
        else:
            chosen = {
                "accuracy" if name in ACCURACY_NAMES else name: value
                for name, value in logged.items()
                if name.startswith("val")
            }
        return chosen
