"""``fd_classifier``: the Frechet distance between generated and real images in the feature
space of a small classifier trained on the real data set.

It is not Inception FID: the features are those of a small CNN this tool trains once per
data set (seeded, so the same data set and tool version give the same classifier), and the
score is comparable only between runs on one data set with one tool version. The classifier
and the real images' feature statistics are cached in a file keyed by a hash of the training
images and the tool version (:func:`reference`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from ..data import Dataset
from ..store import atomic_write

CLASSIFIER_EPOCHS = 5
CLASSIFIER_BATCH = 64
CLASSIFIER_LR = 2e-3
CLASSIFIER_SEED = 0
FEATURES = 32
RECIPE = 1
"""Bumped whenever the classifier's recipe changes (part of the cache key)."""


def tool_version() -> str:
    try:
        return version("ssprop-energy")
    except PackageNotFoundError:
        return "unknown"


class FeatureNet(nn.Module):
    """Three conv-ReLU-pool stages, a ``FEATURES``-wide hidden layer (the features) and
    the class logits."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(128, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        self.eval()
        return torch.cat([self.body(b) for b in x.split(batch_size)]).double().numpy()


@dataclass
class Reference:
    """The trained classifier, its validation accuracy and the real images' statistics."""

    net: FeatureNet
    accuracy: float
    mean: np.ndarray
    cov: np.ndarray


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """||mean_a - mean_b||^2 + Tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2)), never below 0.

    Tr((cov_a cov_b)^(1/2)) is the sum of the square roots of the eigenvalues of the
    symmetric S cov_b S, S = cov_a^(1/2): defined even where fewer samples than features
    leave the covariances singular."""
    root_a = _sqrt_psd(cov_a)
    middle = linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace = np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(middle.clip(min=0)).sum()
    return max(0.0, float(np.sum((mean_a - mean_b) ** 2) + trace))


def score(ref: Reference, images: torch.Tensor) -> float:
    """``fd_classifier`` of ``images`` (pixels in [-1, 1]) against the real images."""
    mean, cov = statistics(ref.net.features(images.float().cpu()))
    return frechet_distance(mean, cov, ref.mean, ref.cov)


def _train(data: Dataset) -> Reference:
    """The classifier, trained on the training split with its own seed (the global RNG
    state is left as it was; gradients on even under ``torch.no_grad``)."""
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(CLASSIFIER_SEED)
        net = FeatureNet(data.input_shape[0], data.classes)
        opt = torch.optim.Adam(net.parameters(), lr=CLASSIFIER_LR)
        net.train()
        for epoch in range(CLASSIFIER_EPOCHS):
            for x, y in data.train_batches(CLASSIFIER_BATCH, epoch, CLASSIFIER_SEED):
                loss = F.cross_entropy(net(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(data.x_val).argmax(1) == data.y_val).float().mean())
    mean, cov = statistics(net.features(data.x_train))
    return Reference(net, accuracy, mean, cov)


def cache_key(data: Dataset) -> str:
    """A hash of the training images and labels, the tool version and the recipe."""
    digest = hashlib.sha256(f"{tool_version()}/{RECIPE}".encode())
    digest.update(data.x_train.contiguous().numpy().tobytes())
    digest.update(data.y_train.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def reference(data: Dataset, cache_dir: Path) -> Reference:
    """The data set's reference, loaded from ``cache_dir/<key>.pt``, or trained and written
    there (atomically) when that file is missing."""
    path = cache_dir / f"{cache_key(data)}.pt"
    if path.is_file():
        state = torch.load(path, weights_only=True)
        net = FeatureNet(data.input_shape[0], data.classes)
        net.load_state_dict(state["net"])
        mean, cov = state["mean"].numpy(), state["cov"].numpy()
        return Reference(net.eval(), float(state["accuracy"]), mean, cov)
    ref = _train(data)
    state = {
        "net": ref.net.state_dict(),
        "accuracy": torch.tensor(ref.accuracy),
        "mean": torch.from_numpy(ref.mean),
        "cov": torch.from_numpy(ref.cov),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(state, fh))
    return ref
