"""torchvision data sets on disk, through a stand-in ``torchvision.datasets`` (torchvision has
no CPU build for this torch): an MNIST-like set loads, scaled and split; CelebA loads its
faces cropped and resized, labelled by an attribute; a set the loader cannot read is one
error line."""

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
    """CelebA's interface as the loader uses it: 218 x 178 RGB faces by index (the centre
    bright, the border dark), 40 binary attributes with their names."""

    attr_names = [f"attr{i}" for i in range(20)] + ["Male"] + [f"attr{i}" for i in range(21, 40)]

    def __init__(self, root: str, split: str, target_type: str, download: bool = False) -> None:
        assert (split, target_type) == ("train", "attr")
        self.attr = torch.zeros(24, 40, dtype=torch.long)
        self.attr[::2, 20] = 1

    def __len__(self) -> int:
        return len(self.attr)

    def __getitem__(self, index: int) -> tuple[np.ndarray, torch.Tensor]:
        face = np.zeros((218, 178, 3), dtype=np.uint8)
        face[39:179, 19:159] = 200 + index  # the central 140 x 140 pixels
        return face, self.attr[index]


class FakeImageFolder:
    def __init__(self, root: str, split: str = "train", download: bool = False) -> None:
        raise AssertionError("never built: the loader refuses it first")


@pytest.fixture
def torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = types.ModuleType("torchvision.datasets")
    datasets.FakeMNIST = FakeMNIST  # type: ignore[attr-defined]
    datasets.CelebA = FakeCelebA  # type: ignore[attr-defined]
    datasets.FakeImageFolder = FakeImageFolder  # type: ignore[attr-defined]
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


def test_celeba_loads_the_central_faces_resized_labelled_by_an_attribute(
    torchvision: None,
) -> None:
    cfg = DataConfig(name="CelebA", image_size=16, val_split=0.25)
    data = load_data(cfg, symmetric_range)
    assert data.x_train.shape == (18, 3, 16, 16) and data.classes == 2
    assert torch.cat([data.y_train, data.y_val]).sum() == 12  # every other face is Male
    faces = torch.cat([data.x_train, data.x_val])
    assert faces.min() == -1 and faces.max() == 1
    assert (faces.amax(dim=(1, 2, 3)) - faces.amin(dim=(1, 2, 3))).max() < 1e-4  # only centres


def test_a_set_the_loader_cannot_read_is_one_line_with_the_way_round(torchvision: None) -> None:
    with pytest.raises(UserError) as caught:
        load_data(DataConfig(name="FakeImageFolder"))
    text = str(caught.value)
    assert text.startswith("data.name: FakeImageFolder: the loader reads CelebA and")
    assert "use name: npz" in text and "\n" not in text
