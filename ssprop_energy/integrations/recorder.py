"""``RunRecorder``: a run of the results store from a training loop of one's own.

    with RunRecorder("runs", "mnist", "ssprop keep=0.5", seed=0, model=model,
                     example_input=x) as rec:
        for epoch in range(epochs):
            for x, y in loader:
                with rec.phase("forward"):
                    loss = loss_fn(model(x), y)
                with rec.phase("backward"):
                    loss.backward()
                with rec.phase("optimizer"):
                    opt.step(); opt.zero_grad()
                rec.end_step(loss, samples=len(x))
            with rec.phase("eval"):
                accuracy = evaluate(model)
            rec.end_epoch(metrics={"accuracy": accuracy}, eval_samples=len(val_set))

The phases are windows of the ``EnergyMeter``; each step's FLOPs are counted analytically at
the keep in force; the epoch rows, meta.json, the power trace, the run's status and its lock
are written by the same code as a ``profile`` run's. A metering fault never reaches the
loop: the recorder notes it in meta.json (``notes``) and the affected windows have no energy
figure (``unavailable``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from ..errors import UserError
from ..harness.config import EnergyConfig, check_sweep_name, validation_message
from ..harness.run.build import FlopCache, count_step_flops
from ..harness.run.epoch import EpochAccumulator
from ..harness.run.faults import MAX_NOTES
from ..harness.run.metering import build_meter, one_line
from ..harness.run.session import RunSession
from ..profilers import EnergyMeter, Measurement
from ..provenance import UNAVAILABLE
from ..sparse import DropScheduler
from ..store import PHASES
from .identity import RecordedRun, keep_in_force, recorded_meta

__all__ = ["MAX_NOTES", "RunRecorder"]
EVAL = "eval"


def _energy_config(energy: EnergyConfig | Mapping[str, Any] | None) -> EnergyConfig:
    if isinstance(energy, EnergyConfig):
        return energy
    try:
        return EnergyConfig.model_validate(dict(energy or {}))
    except ValidationError as exc:
        raise UserError(validation_message("energy", exc)) from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"energy: expected a mapping of energy settings ({exc})") from None


def _example_tensors(example_input: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    tensors = [example_input] if isinstance(example_input, torch.Tensor) else example_input
    if (
        not isinstance(tensors, Sequence)
        or not tensors
        or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in tensors)
    ):
        raise UserError(
            "example_input: expected one batch as a tensor or a tuple of tensors (the model's "
            f"positional inputs, batch first), got {type(example_input).__name__}"
        )
    return list(tensors)


class RunRecorder:
    """Records a training loop of one's own as a run of the results store, like ``profile``.

    ``out_dir``/``sweep``/<run-id> is the run folder; ``method_label`` names the run in
    reports, ``seed`` is the seed the loop uses. ``model``: the model as trained (its ssProp
    layers, if any, give the keep); ``example_input``: one training batch, a tensor or the
    tuple of the model's positional inputs (batch first): FLOPs are counted on its shapes.
    ``scheduler``: a ``DropScheduler`` the recorder applies to the model at the start of every
    step (by epoch and step). ``energy``: the ``energy`` section of a profile config (a
    mapping or ``EnergyConfig``; default: its defaults). ``epochs``: epochs planned (default:
    the scheduler's, else the epochs recorded). ``method``: the method's name in meta.json
    (default ``ssprop`` for a model with ssProp layers or a scheduler, else ``dense``, the
    reports' baseline). ``setup``: the sweep point, e.g. ``{"lr": 0.1}``. ``compare_with``:
    a stored run (folder) of the same model and batch: this run takes its model, data and
    setup entries, so the report compares the two (checked: equal FLOPs per step).
    ``primary_metric``/``higher_is_better``: the epoch column that judges the run.
    ``meter``: an ``EnergyMeter`` of one's own, not started (default: built from
    ``energy``). ``recorded_by`` names the integration in ``run_config``.
    """

    def __init__(
        self,
        out_dir: Path | str,
        sweep: str,
        method_label: str,
        seed: int,
        *,
        model: nn.Module,
        example_input: torch.Tensor | Sequence[torch.Tensor],
        scheduler: DropScheduler | None = None,
        energy: EnergyConfig | Mapping[str, Any] | None = None,
        epochs: int | None = None,
        method: str | None = None,
        setup: Mapping[str, Any] | None = None,
        compare_with: Path | str | None = None,
        primary_metric: str = "accuracy",
        higher_is_better: bool = True,
        meter: EnergyMeter | None = None,
        recorded_by: str = "RunRecorder",
    ) -> None:
        try:
            check_sweep_name(sweep)
        except ValueError as exc:
            raise UserError(f"sweep: {exc}, got {sweep!r}") from None
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise UserError(f"epochs: must be an integer >= 1, got {epochs!r}")
        if not method_label:
            raise UserError("method_label: must not be empty")
        self.model = model
        self.scheduler = scheduler
        self.energy = _energy_config(energy)
        self._example = _example_tensors(example_input)
        self._batch = len(self._example[0])
        self._flop_cache: FlopCache = {}
        self.counting_flops = False
        """True while the model runs to count FLOPs (hooks on the model then ignore it)."""
        try:
            forward, backward_dense = self._step_flops(1.0, self._batch)
        except UserError as exc:
            raise UserError(f"example_input: {exc}") from None
        self.meta = recorded_meta(
            RecordedRun(sweep, method_label, seed, method, dict(setup or {}), recorded_by),
            model,
            self._example,
            scheduler,
            self.energy,
            epochs,
            (forward, backward_dense),
            (primary_metric, higher_is_better),
            None if compare_with is None else Path(compare_with),
        )
        self._planned = self.meta.run_config["train"]["epochs"]
        self.run_dir = Path(out_dir) / sweep / self.meta.run_id
        self._session = RunSession(self.run_dir, self.meta)
        self._own_meter = meter
        self._open: dict[str, float] = {}
        self._switched: str | None = None
        self._unmetered: set[str] = set()
        self._epoch = 0
        self._step = 0  # in the epoch
        self._step_keep: float | None = None
        self._acc = EpochAccumulator(0)
        self._epoch_t0 = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> RunRecorder:
        self._session.claim()
        self._start_meter()
        self._session.save_meta()
        self._epoch_t0 = time.perf_counter()
        return self

    def _start_meter(self) -> None:
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        with self._guard("energy meter"):
            meter = self._own_meter or build_meter(self.energy, device)
            self._session.start_meter(meter, self.energy, 0)

    @property
    def _meter(self) -> EnergyMeter | None:
        return self._session.meter

    @property
    def _sources(self) -> list[str]:
        return self._session.sources

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure: Exception | None = None
        if exc is None and self._acc.keeps:
            try:
                self.end_epoch()  # the steps after the last end_epoch
            except Exception as raised:
                failure = raised
        if self._planned is None:
            self.meta.epochs_planned = max(1, self._epoch)
        self._session.finish(exc or failure, self._epoch)
        if failure is not None:
            raise failure

    # -- faults --------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self._session.note(text)

    def _guard(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Run the block; an exception becomes a note (never reaches the loop)."""
        return self._session.faults.guard(what)

    # -- phases and steps ----------------------------------------------------------------

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """``with rec.phase("forward"): ...``: one window of ``name`` (data, forward,
        backward, optimizer or eval)."""
        self.begin_phase(name)
        try:
            yield
        finally:
            self.end_phase(name)

    def begin_phase(self, name: str) -> None:
        """Open a window of ``name``; a training phase opens the step if none is open
        (applying the scheduler)."""
        if name not in PHASES:
            raise UserError(f"phase: {name!r} is not one of {', '.join(PHASES)}")
        if name in self._open:
            self._note(f"phase {name!r} opened twice: the first window was dropped")
            self._open.pop(name)
            with self._guard("energy meter"), contextlib.suppress(ValueError):
                if self._meter is not None and name not in self._unmetered:
                    self._meter.end(name)
        if name != EVAL:
            self.start_step()
        self._unmetered.discard(name)
        self._open[name] = time.perf_counter()
        if self._meter is None:
            return
        try:
            self._meter.begin(name)
        except Exception as exc:
            self._note(f"energy meter: {one_line(exc)}")
            self._unmetered.add(name)

    def end_phase(self, name: str) -> None:
        """Close the window of ``name`` and add it to the epoch."""
        t0 = self._open.pop(name, None)
        if t0 is None:
            self._note(f"phase {name!r} ended without being begun")
            return
        measured: Measurement | None = None
        if self._meter is not None and name not in self._unmetered:
            with self._guard("energy meter"):
                measured = self._meter.end(name)
        if measured is None:
            measured = Measurement(
                name,
                time.perf_counter() - t0,
                dict.fromkeys(self._sources),
                dict.fromkeys(self._sources, UNAVAILABLE),
            )
        self._acc.add_window(name, measured)

    def switch_phase(self, name: str | None) -> None:
        """Close the phase the last switch opened, then open ``name`` (None: none), for
        hooks that mark where one phase ends and the next begins."""
        if self._switched is not None:
            self.end_phase(self._switched)
        self._switched = name
        if name is not None:
            self.begin_phase(name)

    @property
    def switched_phase(self) -> str | None:
        """The phase the last ``switch_phase`` opened, while it is open."""
        return self._switched

    def start_step(self) -> float:
        """Open the step (once): apply the scheduler; return the keep in force."""
        if self._step_keep is None:
            if self.scheduler is not None:
                with self._guard("scheduler"):
                    self.scheduler.apply(self.model, self._epoch, self._step)
            keep, agree = keep_in_force(self.model)
            if not agree:
                self._note("the ssProp layers hold different keeps: FLOPs counted at their mean")
            self._step_keep = keep
        return self._step_keep

    def end_step(
        self,
        loss: float | torch.Tensor | None = None,
        samples: int | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Close the step: its keep, ``loss`` (mean over the batch), ``samples`` (default:
        the example's batch size) and training ``metrics`` (means over the batch, stored as
        ``train_<name>``), and its analytic FLOPs."""
        keep = self.start_step()
        n = self._batch if samples is None else int(samples)
        if n < 1:
            self._note(f"end_step: samples must be >= 1, got {n}: the step is not counted")
            self._step_keep = None
            return
        value = math.nan if loss is None else float(torch.as_tensor(loss).detach())
        if loss is not None and not math.isfinite(value) and self._session.diverged is None:
            self._session.diverged = (
                f"loss became {value} at epoch {self._epoch}, step {self._step}"
            )
        sums = {f"train_{k}": float(v) * n for k, v in (metrics or {}).items()}
        with self._guard("FLOP count"):
            flops = self._step_flops(keep, n)
            dense = self._step_flops(1.0, n)[1]
            self._acc.add_step(keep, n, value, sums, flops, dense)
        self._step += 1
        self._step_keep = None
        self._session.after_step(self._epoch)

    def end_epoch(
        self, metrics: Mapping[str, float] | None = None, eval_samples: int = 0
    ) -> dict[str, Any] | None:
        """Store the epoch's row (validation ``metrics``, e.g. ``{"accuracy": 0.9}``;
        ``eval_samples``: validation samples, for ``flops_eval``); returns it (None for an
        epoch without steps, which is noted and not stored)."""
        for name in list(self._open):
            self._note(f"phase {name!r} still open at the end of epoch {self._epoch}: closed")
            self.end_phase(name)
        self._switched = None
        row = None
        if not self._acc.keeps:
            self._note(f"epoch {self._epoch} ended without a step: not stored")
        else:
            evaluation = self._evaluation(metrics)
            flops_eval = 0
            if eval_samples:
                with self._guard("FLOP count"):
                    flops_eval = self._step_flops(1.0, eval_samples)[0]
            row = self._acc.row(
                evaluation,
                time.perf_counter() - self._epoch_t0,
                self._sources,
                self._session.emissions_kg,
                flops_eval,
            )
            row = {"run_id": self.meta.run_id, **row}
            self._session.end_epoch(row, self._epoch, lambda *_: False)
            self._epoch += 1
        self._acc = EpochAccumulator(self._epoch)
        self._step = 0
        self._step_keep = None
        self._epoch_t0 = time.perf_counter()
        return row

    def _evaluation(self, metrics: Mapping[str, Any] | None) -> dict[str, float]:
        """Validation metrics as numbers; a name an epoch row already uses is left out."""
        taken = {"run_id", "epoch", "keep", "train_loss", "steps", "time_s", "emissions_kg"}
        values: dict[str, float] = {}
        for name, value in (metrics or {}).items():
            if name in taken or name.startswith(("time_s_", "energy_j", "provenance_", "flops_")):
                self._note(f"metric {name!r} left out: an epoch column of that name exists")
                continue
            try:
                values[name] = float(value)
            except (TypeError, ValueError, RuntimeError):
                self._note(f"metric {name!r} left out: {value!r} is not a number")
        return values

    def _step_flops(self, keep: float, batch: int) -> tuple[int, int]:
        def inputs(n: int) -> list[torch.Tensor]:
            return [t.new_empty((n, *t.shape[1:]), device="meta") for t in self._example]

        self.counting_flops = True
        try:
            return count_step_flops(self._flop_cache, self.model, inputs, keep, batch)
        finally:
            self.counting_flops = False

    @property
    def epoch(self) -> int:
        """The epoch being recorded (from 0)."""
        return self._epoch

    @property
    def notes(self) -> list[str]:
        """The metering faults so far, one line each."""
        return self._session.faults.lines
