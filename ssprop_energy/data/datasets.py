"""Data sets as in-memory tensors: digits, synthetic, a user's npz, torchvision on disk.

Everything is small enough to hold in memory, and iterating over in-memory tensors with a
seeded permutation costs next to nothing per step (no DataLoader workers), so the data phase
measures the data movement itself.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler, TensorDataset

from ..errors import UserError
from .config import DataConfig


@dataclass(frozen=True)
class Dataset:
    """Train and validation tensors (images N x C x H x W, integer labels)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape (C, H, W)."""
        return tuple(self.x_train.shape[1:])

    def steps_per_epoch(self, batch_size: int, part: tuple[int, int] = (0, 1)) -> int:
        """Training steps of one epoch; ``part`` (rank, ranks): one rank's share of the
        samples, ``ceil(N / ranks)`` (DistributedSampler's padding)."""
        per_rank = math.ceil(len(self.x_train) / part[1])
        return math.ceil(per_rank / batch_size)

    def train_batches(
        self, batch_size: int, epoch: int, seed: int, part: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches; the order depends only on (seed, epoch). ``part`` (rank, ranks)
        other than (0, 1): that rank's shard, chosen by ``DistributedSampler`` (shuffled by
        seed and epoch, padded so every rank takes as many samples)."""
        if part[1] > 1:
            # the sampler reads only the data set's length
            sampler: DistributedSampler[int] = DistributedSampler(
                TensorDataset(self.x_train), part[1], part[0], shuffle=True, seed=seed * 100_003
            )
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), dtype=torch.long)
        else:
            gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
            order = torch.randperm(len(self.x_train), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield self.x_train[idx], self.y_train[idx]

    def val_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.x_val), batch_size):
            yield self.x_val[start : start + batch_size], self.y_val[start : start + batch_size]


def _images(x: np.ndarray | torch.Tensor, cfg: DataConfig, source: str) -> torch.Tensor:
    """N x C x H x W float tensor at the configured size and channel count."""
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if t.dim() == 3:
        t = t.unsqueeze(1)
    elif t.dim() == 4 and t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2)
    if t.dim() != 4:
        raise UserError(
            f"{source}: images must be N x H x W or N x C x H x W, got {tuple(t.shape)}"
        )
    if t.shape[-1] != cfg.image_size or t.shape[-2] != cfg.image_size:
        t = F.interpolate(
            t, size=(cfg.image_size, cfg.image_size), mode="bilinear", align_corners=False
        )
    if cfg.channels is not None and cfg.channels != t.shape[1]:
        if t.shape[1] != 1:
            raise UserError(f"{source}: cannot turn {t.shape[1]} channels into {cfg.channels}")
        t = t.expand(-1, cfg.channels, -1, -1).contiguous()
    return t


SPARSE_CLASSES = 100
"""Without a known class count, the classes are the largest label + 1: more than this many
classes of which over half have no sample is refused (a stray label, e.g. 1,000,000 among
200 samples, would otherwise give a model of 1,000,001 outputs)."""


def _checked(
    x_raw: object, y_raw: object, source: str, classes: int | None = None, known: str = ""
) -> tuple[np.ndarray, np.ndarray, int]:
    """A data set's images and labels as loaded, refused with one line naming ``source``
    unless both are non-empty numeric arrays of one label per image, the pixels finite and
    the labels integers in [0, classes) of at least two classes; returns x, y and classes.
    ``classes`` is the known class count (``known`` says whose: the config's, the data
    set's), or None: then the largest label + 1, unless that is far above the number of
    distinct labels."""
    x, y = np.asarray(x_raw), np.asarray(y_raw)
    for name, array, kinds in (("x", x, "biuf"), ("y", y, "iuf")):
        if array.size == 0:
            raise UserError(f"{source}: {name} is empty")
        if array.dtype.kind not in kinds:
            raise UserError(f"{source}: {name} must hold numbers, got {array.dtype} values")
    if y.ndim != 1 or x.ndim < 2 or len(x) != len(y):
        raise UserError(
            f"{source}: needs one label in y per image in x, got x {x.shape} and y {y.shape}"
        )
    bad_pixels = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad_pixels:
        raise UserError(f"{source}: x holds {bad_pixels} pixels that are NaN or infinite")
    whole = np.isfinite(y) & (y == np.round(y))
    if not whole.all():
        raise UserError(f"{source}: y: labels must be integers, got {y[~whole][0].item()}")
    labels = y.astype(np.int64)
    if labels.min() < 0:
        raise UserError(f"{source}: y: labels must be in [0, classes), got {labels.min()}")
    present = np.unique(labels)
    if len(present) < 2:
        raise UserError(
            f"{source}: y: every label is {present[0]}; a data set needs at least two classes"
        )
    top = int(labels.max())
    if classes is not None:
        if top >= classes:
            raise UserError(f"{source}: y: labels must be in [0, {classes}) ({known}), got {top}")
        return x, labels, classes
    if top + 1 > SPARSE_CLASSES and top + 1 > 2 * len(present):
        raise UserError(
            f"{source}: y: labels run up to {top} but only {len(present)} distinct labels occur "
            f"(a model of {top + 1} outputs, {top + 1 - len(present)} of them for classes "
            "without a sample); set data.classes to the class count, or number the labels "
            f"0 to {len(present) - 1}"
        )
    return x, labels, top + 1


Scale = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Pixels of all images, scaled by statistics of the training images (the second argument)."""


def standardize(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit standard deviation over the training pixels."""
    return (x - train.mean()) / train.std().clamp_min(1e-8)


def symmetric_range(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """The training pixels' minimum to -1 and maximum to 1."""
    low, high = train.min(), train.max()
    return (x - low) / (high - low).clamp_min(1e-8) * 2 - 1


def _split(
    x: torch.Tensor, y: torch.Tensor, cfg: DataConfig, classes: int, scale: Scale
) -> Dataset:
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(x), generator=gen)
    n_val = max(1, round(len(x) * cfg.val_split))
    if n_val >= len(x):
        raise UserError(f"data.val_split: leaves no training samples ({len(x)} in all)")
    val, train = order[:n_val], order[n_val:]
    x = scale(x, x[train])
    return Dataset(x[train], y[train], x[val], y[val], classes)


def _digits(cfg: DataConfig, scale: Scale) -> Dataset:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = _images(data.images / 16.0, cfg, "digits")
    return _split(x, torch.as_tensor(data.target, dtype=torch.long), cfg, 10, scale)


def _synthetic(cfg: DataConfig, scale: Scale) -> Dataset:
    gen = torch.Generator().manual_seed(cfg.seed)
    channels = cfg.channels or 3
    x = torch.randn(cfg.samples, channels, cfg.image_size, cfg.image_size, generator=gen)
    y = torch.randint(0, cfg.classes, (cfg.samples,), generator=gen)
    return _split(x, y, cfg, cfg.classes, scale)


def _npz(cfg: DataConfig, scale: Scale) -> Dataset:
    if cfg.path is None:
        raise UserError("data.path: the npz data set needs a path to a .npz file with x and y")
    if not cfg.path.is_file():
        raise UserError(f"data.path: {cfg.path}: no such file")
    _npz_magic(cfg.path)
    try:
        with np.load(cfg.path, allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise UserError(f"data.path: {cfg.path}: needs arrays named 'x' and 'y'")
            x_raw, y_raw = archive["x"], archive["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"data.path: {cfg.path}: not a readable .npz file ({exc})") from None
    known = cfg.classes if "classes" in cfg.model_fields_set else None
    x_np, y_np, classes = _checked(
        x_raw, y_raw, f"data.path: {cfg.path}", known, f"data.classes: {cfg.classes}"
    )
    x = _images(x_np, cfg, str(cfg.path))
    return _split(x, torch.as_tensor(y_np), cfg, classes, scale)


def _npz_magic(path: Path) -> None:
    """One line for a file that cannot be an .npz (a zip archive): empty, or another format."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise UserError(f"data.path: {path}: cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise UserError(f"data.path: {path}: the file is empty (0 bytes), not an .npz file")
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise UserError(
            f"data.path: {path}: not an .npz file (numpy.savez writes a zip archive of the "
            "arrays x and y)"
        )


def _torchvision(cfg: DataConfig, scale: Scale) -> Dataset:
    if importlib.util.find_spec("torchvision") is None:
        raise UserError(
            f"data.name: unknown data set {cfg.name!r} (digits, synthetic, npz; torchvision "
            "data sets need `pip install torchvision`)"
        )
    import torchvision.datasets as tvd

    cls = getattr(tvd, cfg.name, None)
    if cls is None:
        raise UserError(f"data.name: {cfg.name!r} is not a torchvision data set")
    root = cfg.path or "data"
    if cfg.name == "CelebA":
        return _celeba(cls, cfg, scale)
    if "train" not in inspect.signature(cls).parameters:
        raise UserError(
            f"data.name: {cfg.name}: the loader reads CelebA and the torchvision data sets that "
            "take train=True and hold a data array (MNIST, FashionMNIST, CIFAR10, ...); save "
            "this one as an npz file (x, y) and use name: npz"
        )
    train = _opened(cfg, lambda: cls(root=str(root), train=True, download=cfg.download))
    names = getattr(train, "classes", None)
    known = len(names) if isinstance(names, list) and names else None
    x_np, y_np, classes = _checked(
        np.asarray(train.data), train.targets, f"data.path: {root}", known, f"{cfg.name}'s classes"
    )
    x = _images(x_np / 255.0, cfg, cfg.name)
    return _split(x, torch.as_tensor(y_np), cfg, classes, scale)


def _opened(cfg: DataConfig, open_set: Callable[[], Any]) -> Any:
    """A torchvision data set as ``open_set`` opens it; one error line naming its folder
    when it is not there."""
    try:
        return open_set()
    except (RuntimeError, OSError) as exc:
        hint = "" if cfg.download else " (set data.download: true to fetch it)"
        raise UserError(
            f"data.path: {cfg.path or 'data'}: {cfg.name} not found{hint}: {exc}"
        ) from None


CELEBA_CROP = 140
"""CelebA's aligned 178 x 218 faces are cut to their central 140 x 140 pixels before
resizing (the crop common in diffusion-model code): the face, without the background."""
CELEBA_LABEL = "Male"
"""The attribute that gives CelebA's images their two classes (the labels the
``fd_classifier`` score's classifier, or a classification run, learns)."""
CELEBA_CHUNK = 512


def _celeba(cls: Any, cfg: DataConfig, scale: Scale) -> Dataset:
    """CelebA's training split: the central ``CELEBA_CROP`` pixels of each face, resized
    (antialiased) to ``image_size`` a chunk at a time, so memory holds only the resized set;
    labelled by the ``CELEBA_LABEL`` attribute."""
    root = cfg.path or "data"
    faces = _opened(
        cfg,
        lambda: cls(root=str(root), split="train", target_type="attr", download=cfg.download),
    )
    labels = faces.attr[:, list(faces.attr_names).index(CELEBA_LABEL)]
    chunks = []
    for start in range(0, len(faces), CELEBA_CHUNK):
        arrays = []
        for i in range(start, min(start + CELEBA_CHUNK, len(faces))):
            image = np.asarray(faces[i][0])
            top, left = (image.shape[0] - CELEBA_CROP) // 2, (image.shape[1] - CELEBA_CROP) // 2
            arrays.append(image[top : top + CELEBA_CROP, left : left + CELEBA_CROP])
        batch = torch.as_tensor(np.stack(arrays), dtype=torch.float32).permute(0, 3, 1, 2)
        size = (cfg.image_size, cfg.image_size)
        chunks.append(F.interpolate(batch / 255.0, size=size, mode="bilinear", antialias=True))
    x_np, y_np, classes = _checked(
        torch.cat(chunks).numpy(), np.asarray(labels), f"data.path: {root}"
    )
    x = _images(x_np, cfg, cfg.name)
    return _split(x, torch.as_tensor(y_np), cfg, classes, scale)


def load_data(cfg: DataConfig, scale: Scale = standardize) -> Dataset:
    """The configured data set with a seeded validation split, its pixels scaled by
    ``scale`` (standardized by default; :func:`symmetric_range` for [-1, 1])."""
    loaders = {"digits": _digits, "synthetic": _synthetic, "npz": _npz}
    return loaders.get(cfg.name, _torchvision)(cfg, scale)
