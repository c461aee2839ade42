"""DropScheduler matches the schedule formulas of docs/sparse.md exactly."""

from __future__ import annotations

import math

import pytest

from ssprop_energy import DropScheduler, convert_model, sparse_layers
from ssprop_energy.models import build_model


def test_by_epoch_formulas() -> None:
    p, m, e_total = 0.8, 0.2, 5
    linear = DropScheduler("linear", p, m, epochs=e_total)
    cosine = DropScheduler("cosine", p, m, epochs=e_total)
    bar = DropScheduler("bar", p, m, epochs=e_total)
    for e in range(e_total):
        assert linear.keep_at(e) == max(m, p - (p - m) * e / 4)
        assert cosine.keep_at(e) == m + 0.5 * (p - m) * (1 + math.cos(math.pi * e / 4))
        assert bar.keep_at(e) == (p if e < 2 else m)
    assert [round(linear.keep_at(e), 10) for e in range(5)] == [0.8, 0.65, 0.5, 0.35, 0.2]
    assert cosine.keep_at(0) == pytest.approx(0.8) and cosine.keep_at(4) == pytest.approx(0.2)


def test_by_iteration_formulas() -> None:
    p, m, t = 0.9, 0.3, 4
    linear = DropScheduler("linear", p, m, epochs=2, by="iteration", period=t)
    cosine = DropScheduler("cosine", p, m, epochs=2, by="iteration", period=t)
    bar = DropScheduler("bar", p, m, epochs=2, by="iteration", period=t)
    for i in range(10):
        assert linear.keep_at(1, i) == max(m, p - (p - m) * (i % t) / t)
        assert cosine.keep_at(1, i) == m + 0.5 * (p - m) * (1 + math.cos(math.pi * i / t))
        assert bar.keep_at(1, i) == (p if i % t < 2 else m)


def test_warmup_and_interleave() -> None:
    sched = DropScheduler("constant", 0.2, epochs=8, warmup=2, interleave=True)
    assert [sched.keep_at(e) for e in range(8)] == [1, 1, 1, 0.2, 1, 0.2, 1, 0.2]
    assert DropScheduler("constant", 0.2, epochs=4).mean_keep() == pytest.approx(0.2)


def test_constant_interleaved_keep_02_drops_40_percent_on_average() -> None:
    sched = DropScheduler("constant", 0.2, epochs=10, interleave=True)
    assert 1 - sched.mean_keep() == pytest.approx(0.4)


def test_stateless_resume_and_mean_keep_by_iteration() -> None:
    sched = DropScheduler("linear", 1.0, 0.5, epochs=3, by="iteration", period=2)
    fresh = DropScheduler("linear", 1.0, 0.5, epochs=3, by="iteration", period=2)
    assert [sched.keep_at(2, i) for i in range(4)] == [fresh.keep_at(2, i) for i in range(4)]
    assert sched.mean_keep(steps_per_epoch=4) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        sched.mean_keep()


def test_single_epoch_and_apply() -> None:
    assert DropScheduler("linear", 0.6, 0.2, epochs=1).keep_at(0) == 0.6
    model = convert_model(build_model("cnn", depth=2, width=4), keep=1.0)
    sched = DropScheduler("bar", 0.7, 0.3, epochs=4)
    assert sched.apply(model, 3) == 0.3
    assert all(m.keep == 0.3 for _, m in sparse_layers(model))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("constant", 0.0), {}, "keep"),
        (("constant", 1.2), {}, "keep"),
        (("sawtooth", 0.5), {}, "mode"),
        (("linear", 0.5, 0.6), {}, "min_keep"),
        (("linear", 0.5), {}, "min_keep"),
        (("linear", 0.5, 0.0), {}, "min_keep"),
        (("constant", 0.5), {"by": "batch"}, "by"),
        (("constant", 0.5), {"epochs": 0}, "epochs"),
        (("constant", 0.5), {"warmup": -1}, "warmup"),
        (("constant", 0.5), {"period": 0}, "period"),
    ],
)
def test_bad_arguments_name_the_argument(args: tuple, kwargs: dict, message: str) -> None:
    kwargs.setdefault("epochs", 3)
    with pytest.raises(ValueError, match=message):
        DropScheduler(*args, **kwargs)
