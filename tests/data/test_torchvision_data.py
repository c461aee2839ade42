"""torchvision data sets on disk, through a stand-in ``torchvision.datasets`` (torchvision has
no CPU build for this torch): an MNIST-like set loads, scaled and split; a set the loader
cannot read (CelebA: split=, image files) is one error line."""

from __future__ import annotations

import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import numpy as np
import pytest
import torch

from ssprop_energy.data import DataConfig, load_data
from ssprop_energy.data.datasets import symmetric_range
from ssprop_energy.errors import UserError


class FakeMNIST:
    """MNIST's interface as the loader uses it: uint8 images in ``data``, ``targets``."""

    def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
        if not (Path(root) / "FakeMNIST").is_dir():
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        gen = np.random.default_rng(0)
        self.data = gen.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
        self.targets = torch.arange(40) % 10


class FakeCelebA:
    def __init__(self, root: str, split: str = "train", download: bool = False) -> None:
        raise AssertionError("never built: the loader refuses it first")


@pytest.fixture
def torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = types.ModuleType("torchvision.datasets")
    datasets.FakeMNIST = FakeMNIST  # type: ignore[attr-defined]
    datasets.CelebA = FakeCelebA  # type: ignore[attr-defined]
    package = types.ModuleType("torchvision")
    package.datasets = datasets  # type: ignore[attr-defined]
    package.__spec__ = ModuleSpec("torchvision", None)  # what find_spec reads
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


def test_an_mnist_like_set_on_disk_loads_scaled_to_the_configured_size(
    torchvision: None, tmp_path: Path
) -> None:
    (tmp_path / "FakeMNIST").mkdir()
    cfg = DataConfig(name="FakeMNIST", path=tmp_path, image_size=16, val_split=0.25)
    data = load_data(cfg, symmetric_range)
    assert data.x_train.shape == (30, 1, 16, 16) and data.x_val.shape == (10, 1, 16, 16)
    assert data.x_train.min() == -1 and data.x_train.max() == 1 and data.classes == 10


def test_a_missing_set_names_its_folder(torchvision: None, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=rf"^data.path: {tmp_path}: FakeMNIST not found \(set"):
        load_data(DataConfig(name="FakeMNIST", path=tmp_path))


def test_celeba_is_refused_in_one_line_with_the_way_round(torchvision: None) -> None:
    with pytest.raises(UserError) as caught:
        load_data(DataConfig(name="CelebA"))
    text = str(caught.value)
    assert text.startswith("data.name: CelebA: the loader reads torchvision data sets")
    assert "use name: npz" in text and "\n" not in text
