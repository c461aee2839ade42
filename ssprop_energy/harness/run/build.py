"""The one run builder: a run's seeded model, data, method, task and optimizer, built the same
way for training, for ``--dry-run`` and for the ``flops`` command."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data import Dataset
from ...errors import UserError
from ...flops.counter import InputSpec
from ...flops.training import count_flops_at
from ...methods import Method, build_method
from ...models import MODELS, build_model, load_factory
from ...store import WEIGHTS
from ...tasks import Task, build_task
from ..runs import RunSpec

FlopCache = dict[tuple[int, float, int], tuple[int, int]]
"""(id of the model, keep, batch) -> (forward, backward) FLOPs of one step."""


@dataclass
class RunContext:
    """A run's model (prepared by its method), data, method, task and optimizer."""

    model: nn.Module
    data: Dataset
    device: torch.device
    method: Method
    task: Task
    optimizer: torch.optim.Optimizer
    optimizer_for: Callable[[nn.Module], torch.optim.Optimizer]
    flop_cache: FlopCache = field(default_factory=dict)
    part: tuple[int, int] = (0, 1)
    """(rank, ranks): the share of the training data this process trains on."""
    wrap: Callable[[nn.Module], nn.Module] | None = None
    """What the training forward pass runs the model in (DistributedDataParallel), if any."""
    trained: nn.Module | None = None
    share_buffers: Callable[[nn.Module], None] | None = None
    """Makes the model's buffers (BatchNorm's running statistics) rank 0's on every rank
    before evaluation, as DistributedDataParallel does before each forward pass."""

    @property
    def forward_model(self) -> nn.Module:
        """The module a training step calls: the model, or its ``wrap``."""
        return self.model if self.trained is None else self.trained

    def replace_model(self, model: nn.Module) -> None:
        """Train ``model`` from now on (a method changed the model's shape): a fresh
        optimizer over its parameters, its FLOPs counted anew."""
        self.model = model.to(self.device)
        self.trained = None if self.wrap is None else self.wrap(self.model)
        self.optimizer = self.optimizer_for(self.model)
        self.flop_cache.clear()


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is a UserError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda requested but torch.cuda.is_available() is False")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_run_data(spec: RunSpec) -> Dataset:
    """The data set of a run, as its task builds it."""
    return build_task(spec.task).build_data(spec.data)


def _model_kwargs(spec: RunSpec, task: Task, data: Dataset) -> dict[str, Any]:
    factory = MODELS.get(spec.model.name or "") or load_factory(str(spec.model.factory))
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    kwargs = dict(spec.model.kwargs)
    defaults = task.model_defaults(data)
    if spec.method.dropout is not None:
        if "dropout" not in accepted:
            raise UserError(f"methods: dropout given but model {spec.model.label!r} has no dropout")
        defaults["dropout"] = spec.method.dropout
    for key, value in defaults.items():
        if key in accepted and (key not in kwargs or key == "dropout"):
            kwargs[key] = value
    return kwargs


def build_run(
    spec: RunSpec,
    data: Dataset | None = None,
    device: torch.device | None = None,
    init_from: Path | None = None,
) -> RunContext:
    """Seeded model (prepared by the run's method), data, method, task and optimizer.

    ``device`` overrides the config's (counting FLOPs needs no GPU). ``init_from``: the
    weights of the run ``spec.init_run`` (see ``init_weights``)."""
    task = build_task(spec.task)
    data = data or task.build_data(spec.data)
    method = build_method(spec.method, spec.train.epochs)
    seed_everything(spec.seed)
    model = build_model(
        spec.model.name or str(spec.model.factory), **_model_kwargs(spec, task, data)
    )
    if init_from is not None:
        _load_init(model, init_from, f"methods: {spec.label}: init_from")
    elif spec.train.init_from is not None:
        _load_init(model, spec.train.init_from, "train.init_from")
    try:
        model = method.prepare(model)
    except ValueError as exc:
        raise UserError(f"methods: {spec.label}: {exc}") from None
    _freeze(model, spec.train.freeze, "train.freeze")
    _freeze(model, spec.method.freeze, f"methods: {spec.label}: freeze")
    device = device or resolve_device(spec.train.device)
    model.to(device)
    return RunContext(
        model, data, device, method, task, _optimizer(spec, model), partial(_optimizer, spec)
    )


def _optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    t = spec.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=t.lr, weight_decay=t.weight_decay)


def init_weights(spec: RunSpec, run_dir: Path) -> Path | None:
    """The weights file a run starts from when its method has ``init_from``: the final
    weights of run ``spec.init_run`` beside ``run_dir`` (there once that run finished)."""
    return run_dir.parent / spec.init_run / WEIGHTS if spec.init_run else None


def _load_init(model: nn.Module, path: Path, field: str) -> None:
    if not path.is_file():
        raise UserError(f"{field}: {path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{field}: {path}: does not fit the model ({first})") from None


def _freeze(model: nn.Module, patterns: list[str], field: str) -> None:
    if not patterns:
        return
    matched = set()
    for name, module in model.named_modules():
        hits = [p for p in patterns if name and fnmatchcase(name, p)]
        if hits:
            matched.update(hits)
            for param in module.parameters():
                param.requires_grad_(False)
    missing = [p for p in patterns if p not in matched]
    if missing:
        raise UserError(f"{field}: {missing[0]!r} matches no module of the model")


def count_step_flops(
    cache: FlopCache,
    model: nn.Module,
    inputs: Callable[[int], InputSpec],
    keep: float,
    batch: int,
) -> tuple[int, int]:
    """Analytic (forward, backward) FLOPs of one training step of ``model`` on
    ``inputs(batch)``, its ssProp layers at ``keep`` (plain layers dense), counted once per
    model, keep and batch."""
    key = (id(model), keep, batch)
    if key not in cache:
        report = count_flops_at(model, inputs(batch), keep)
        cache[key] = (report.forward, report.backward)
    return cache[key]


def step_flops(ctx: RunContext, keep: float, batch: int) -> tuple[int, int]:
    """Analytic (forward, backward) FLOPs of one step of ``batch`` samples at ``keep``, for
    the model as it is now (a method's ``finalize`` may replace it)."""
    shape = ctx.data.input_shape
    return count_step_flops(ctx.flop_cache, ctx.model, lambda n: (n, *shape), keep, batch)
