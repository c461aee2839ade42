"""``EnergyCallback`` for Hugging Face ``transformers.Trainer``: ``trainer.train()`` recorded
as a run of the results store (``pip install 'ssprop-energy[transformers]'``).

The callback API has no hook between the forward and the backward pass, nor at the start of
an evaluation; the callback adds a forward pre-hook and a forward hook on the model to
find them. Phases:

- ``data``: ``on_step_end`` (or the epoch's start) to the step's first forward: fetching
  the step's batches, ``on_step_begin``, moving the inputs to the device, logging and
  checkpointing between steps;
- ``forward``: the model's forward call (each micro-batch);
- ``backward``: the end of the forward to the next micro-batch's forward or
  ``on_pre_optimizer_step``: the loss outside the model, the backward pass and gradient
  clipping (one window: the API cannot separate them);
- ``optimizer``: ``on_pre_optimizer_step`` to ``on_step_end``: the optimizer step, the LR
  scheduler and ``zero_grad``;
- ``eval``: the first forward of an evaluation to ``on_evaluate`` (the evaluation's metrics
  included; its first batch's loading is in ``data``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .batches import samples_in
from .optional import require
from .recorder import RunRecorder

transformers = require("transformers", "transformers")

SKIPPED_METRICS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch")
"""``on_evaluate`` entries that are no validation metric."""


def _loss(output: Any) -> torch.Tensor | None:
    loss = output.get("loss") if isinstance(output, Mapping) else None
    return loss if isinstance(loss, torch.Tensor) else None


def column_of(name: str) -> str:
    """The epoch column of an ``on_evaluate`` metric: ``eval_loss`` -> ``val_loss``,
    ``eval_accuracy`` -> ``accuracy``."""
    stripped = name.removeprefix("eval_")
    return "val_loss" if stripped == "loss" else stripped


class EnergyCallback(transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Records ``trainer.train()`` as a run: the arguments are ``RunRecorder``'s (the model is
    the trainer's; ``epochs`` defaults to ``ceil(num_train_epochs)``).

    ``scheduler``: a ``DropScheduler`` applied at every optimizer step. ``metrics``:
    ``on_evaluate`` metric -> epoch column; default: every ``eval_*`` metric but the
    timings, ``eval_loss`` stored as ``val_loss`` and ``eval_<name>`` as ``<name>``. The
    train loss is the model output's ``loss`` (NaN where the trainer computes it outside the
    model). After training, ``run_dir`` is the run's folder.
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
        self._args = (out_dir, sweep, method_label, seed)
        self._example = example_input
        self._metrics = metrics
        self._options = recorder
        self.recorder: RunRecorder | None = None
        self.run_dir: Path | None = None
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._samples = 0
        self._losses: list[torch.Tensor] = []
        self._eval_samples = 0
        self._evaluation: dict[str, Any] = {}
        self._epoch_pending = False

    # -- the recorder's lifetime ----------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model: nn.Module = kwargs["model"]
        options = dict(self._options)
        if args.max_steps is None or args.max_steps <= 0:
            options.setdefault("epochs", max(1, math.ceil(args.num_train_epochs)))
        self.recorder = RunRecorder(
            *self._args,
            model=model,
            example_input=self._example,
            recorded_by="transformers",
            **options,
        )
        self.run_dir = self.recorder.run_dir
        self.recorder.__enter__()
        self._hooks = [
            model.register_forward_pre_hook(self._before_forward, with_kwargs=True),
            model.register_forward_hook(self._after_forward),
        ]

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        recorder, self.recorder = self.recorder, None
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if recorder is None:
            return
        recorder.switch_phase(None)
        if self._epoch_pending:
            self._end_epoch(recorder)
        recorder.__exit__(None, None, None)

    # -- phases ----------------------------------------------------------------------------

    def _phase(self) -> str | None:
        return None if self.recorder is None else self.recorder.switched_phase

    def _switch(self, phase: str | None) -> None:
        if self.recorder is not None:
            self.recorder.switch_phase(phase)

    def _before_forward(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        if self.recorder is None or self.recorder.counting_flops:
            return
        if module.training:
            self._samples += samples_in([*args, *kwargs.values()]) or 0
            self._switch("forward")
        else:
            if self._phase() != "eval":
                self._switch("eval")
            self._eval_samples += samples_in([*args, *kwargs.values()]) or 0

    def _after_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.recorder is not None and module.training and not self.recorder.counting_flops:
            loss = _loss(output)
            if loss is not None:
                self._losses.append(loss.detach())
            self._switch("backward")

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.recorder is not None and self._epoch_pending:
            self._switch(None)
            self._end_epoch(self.recorder)
        self._switch("data")

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._switch("optimizer")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.recorder is None:
            return
        self._switch(None)
        loss = torch.stack(self._losses).mean() if self._losses else None
        self.recorder.end_step(loss, self._samples or None)
        self._samples, self._losses = 0, []
        self._switch("data")

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.recorder is None:
            return
        if self._phase() == "eval":
            self._switch("data")
        self._evaluation = self._validation_metrics(metrics or {})
        if self._epoch_pending:
            self._switch(None)
            self._end_epoch(self.recorder)
            self._switch("data")

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The epoch is stored after an evaluation that follows it (``eval_strategy="epoch"``
        evaluates after this hook), else at the next epoch's start or the end of training."""
        self._epoch_pending = self.recorder is not None

    def _end_epoch(self, recorder: RunRecorder) -> None:
        recorder.end_epoch(self._evaluation, self._eval_samples)
        self._epoch_pending = False
        self._evaluation, self._eval_samples = {}, 0

    def _validation_metrics(self, reported: Mapping[str, Any]) -> dict[str, Any]:
        if self._metrics is not None:
            return {
                column: reported[name] for name, column in self._metrics.items() if name in reported
            }
        return {
            column_of(name): value
            for name, value in reported.items()
            if name.startswith("eval_") and name not in SKIPPED_METRICS
        }
