"""Overhead per training step of the run recorder and the Lightning and Hugging Face
callbacks (CPU, a small CNN on 32x32 images, batch 64).

For each integration, rounds alternate a run without it and a run with it (the recorder
with its default meter: CodeCarbon's tracker and the 100 ms sampler; no idle measurement),
so drifts in machine load hit both alike. A step's time is the interval between the starts
of consecutive steps (the first steps of a run are left out). Prints the median step time of
each, the overhead (with / without - 1) over all steps, and each round's overhead (the
spread). On a busy machine that difference drowns in noise, so it also prints a steadier
figure: the integration's own hooks for one step, called back to back on a running recorder
(no training in between), over the plain step time. Target: at most 2% per step. Synthetic
data, no download; writes runs to a temporary folder.

    python benchmarks/recorder_overhead.py [--rounds 3] [--steps 20] [--only plain,lightning]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssprop_energy import RunRecorder

TARGET = 0.02
"""Step time with the integration over without it, minus one."""
WARMUP_STEPS = 3
"""Steps at the start of each run left out of the timings."""
BATCH = 64
ENERGY = {"idle_s": 0}


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def make_data(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = (steps + WARMUP_STEPS + 1) * BATCH
    return torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def intervals(starts: list[float]) -> list[float]:
    return [b - a for a, b in zip(starts[WARMUP_STEPS:], starts[WARMUP_STEPS + 1 :], strict=False)]


# -- a plain loop --------------------------------------------------------------------------


def plain(steps: int, out: Path | None) -> list[float]:
    """Step intervals of a plain loop, recorded by a RunRecorder when ``out`` is given."""
    model, (x, y) = make_model(), make_data(steps)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    starts: list[float] = []

    def loop(rec: RunRecorder | None) -> None:
        def phase(name: str, begin: bool) -> None:
            if rec is not None:
                (rec.begin_phase if begin else rec.end_phase)(name)

        for start in range(0, len(x), BATCH):
            starts.append(time.perf_counter())
            phase("data", True)
            xb, yb = x[start : start + BATCH], y[start : start + BATCH]
            phase("data", False)
            phase("forward", True)
            loss = F.cross_entropy(model(xb), yb)
            phase("forward", False)
            phase("backward", True)
            loss.backward()
            phase("backward", False)
            phase("optimizer", True)
            optimizer.step()
            optimizer.zero_grad()
            phase("optimizer", False)
            if rec is not None:
                rec.end_step(loss, samples=len(xb))

    if out is None:
        loop(None)
    else:
        example = x[:BATCH]
        with RunRecorder(out, "bench", "plain", 0, model=model, example_input=example,
                         energy=ENERGY) as rec:  # fmt: skip
            loop(rec)
    return intervals(starts)


# -- Lightning -----------------------------------------------------------------------------


def lightning(steps: int, out: Path | None) -> list[float]:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from ssprop_energy.integrations.lightning import EnergyCallback

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            return F.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_train_batch_start(self, *args: Any) -> None:
            self.starts.append(time.perf_counter())

    x, y = make_data(steps)
    clock = Clock()
    callbacks: list[Any] = [clock]
    if out is not None:
        callbacks.append(EnergyCallback(out, "bench", "lightning", 0, example_input=x[:BATCH],
                                        energy=ENERGY))  # fmt: skip
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=callbacks)  # fmt: skip
    trainer.fit(Module(), DataLoader(TensorDataset(x, y), batch_size=BATCH))
    return intervals(clock.starts)


# -- Hugging Face Trainer --------------------------------------------------------------------


def transformers(steps: int, out: Path | None) -> list[float]:
    import transformers as hf

    from ssprop_energy.integrations.transformers import EnergyCallback

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model()

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
            logits = self.model(x)
            loss = None if labels is None else F.cross_entropy(logits, labels)
            return {"loss": loss, "logits": logits}

    class Pairs(torch.utils.data.Dataset):
        def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
            self.x, self.y = x, y

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": self.x[i], "labels": self.y[i]}

    class Clock(hf.TrainerCallback):
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.starts.append(time.perf_counter())

    x, y = make_data(steps)
    clock = Clock()
    callbacks: list[Any] = [clock]
    with tempfile.TemporaryDirectory() as scratch:
        if out is not None:
            callbacks.append(EnergyCallback(out, "bench", "hf", 0, example_input=x[:BATCH],
                                            energy=ENERGY))  # fmt: skip
        args = hf.TrainingArguments(
            output_dir=scratch, num_train_epochs=1, per_device_train_batch_size=BATCH,
            learning_rate=0.01, optim="sgd", save_strategy="no", logging_strategy="no",
            report_to="none", disable_tqdm=True,
        )  # fmt: skip
        hf.Trainer(model=Classifier(), args=args, train_dataset=Pairs(x, y),
                   callbacks=callbacks).train()  # fmt: skip
    return intervals(clock.starts)


def hook_seconds(name: str, out: Path, calls: int = 300) -> float:
    """The integration's own cost per step: its hooks for one step called ``calls`` times in
    a row on a running recorder, no training in between (seconds per step)."""
    model, (x, y) = make_model(), make_data(1)
    batch, loss = (x[:BATCH], y[:BATCH]), torch.tensor(2.3)
    if name == "plain":
        with RunRecorder(out, "hooks", name, 0, model=model, example_input=batch[0],
                         energy=ENERGY) as rec:  # fmt: skip
            t0 = time.perf_counter()
            for _ in range(calls):
                for phase in ("data", "forward", "backward", "optimizer"):
                    rec.begin_phase(phase)
                    rec.end_phase(phase)
                rec.end_step(loss, samples=BATCH)
            return (time.perf_counter() - t0) / calls
    if name == "lightning":
        from ssprop_energy.integrations.lightning import EnergyCallback as LightningCallback

        hooks = LightningCallback(out, "hooks", name, 0, example_input=batch[0], energy=ENERGY)
        trainer = SimpleNamespace(max_epochs=1, sanity_checking=False)
        hooks.on_fit_start(trainer, model)
        t0 = time.perf_counter()
        for i in range(calls):
            hooks.on_train_batch_start(trainer, model, batch, i)
            hooks.on_before_backward(trainer, model, loss)
            hooks.on_after_backward(trainer, model)
            hooks.on_train_batch_end(trainer, model, {"loss": loss}, batch, i)
        seconds = (time.perf_counter() - t0) / calls
        hooks.on_fit_end(trainer, model)
        return seconds
    from ssprop_energy.integrations.transformers import EnergyCallback as HfCallback

    callback = HfCallback(out, "hooks", name, 0, example_input=batch[0], energy=ENERGY)
    args = SimpleNamespace(max_steps=-1, num_train_epochs=1)
    callback.on_train_begin(args, None, None, model=model)
    t0 = time.perf_counter()
    for _ in range(calls):
        callback._before_forward(model, (batch[0],), {"labels": batch[1]})
        callback._after_forward(model, (batch[0],), {"loss": loss})
        callback.on_pre_optimizer_step(args, None, None)
        callback.on_step_end(args, None, None)
    seconds = (time.perf_counter() - t0) / calls
    callback.on_train_end(args, None, None)
    return seconds


LOOPS: dict[str, Callable[[int, Path | None], list[float]]] = {
    "plain": plain,
    "lightning": lightning,
    "transformers": transformers,
}


def compare(name: str, rounds: int, steps: int, out: Path) -> None:
    without: list[float] = []
    with_: list[float] = []
    per_round = []
    for r in range(rounds):
        plain_steps = LOOPS[name](steps, None)
        recorded_steps = LOOPS[name](steps, out / f"{name}-{r}")
        without += plain_steps
        with_ += recorded_steps
        per_round.append(statistics.median(recorded_steps) / statistics.median(plain_steps) - 1)
    a, b = statistics.median(without), statistics.median(with_)
    overhead = b / a - 1
    rounds_text = ", ".join(f"{o:+.1%}" for o in per_round)
    hooks = hook_seconds(name, out / f"{name}-hooks")
    verdict = "meets" if hooks / a <= TARGET else "misses"
    print(
        f"{name:13s} step without {a * 1e3:7.2f} ms, with {b * 1e3:7.2f} ms: overhead "
        f"{overhead:+.1%} (rounds: {rounds_text}); the hooks alone {hooks * 1e3:.3f} ms "
        f"per step = {hooks / a:.2%} of a step ({verdict} the {TARGET:.0%} target)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", default=",".join(LOOPS))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    print(f"torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}, "
          f"{args.rounds} rounds of {args.steps} steps, batch {BATCH}")  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        for name in args.only.split(","):
            compare(name, args.rounds, args.steps, Path(out))


if __name__ == "__main__":
    main()
