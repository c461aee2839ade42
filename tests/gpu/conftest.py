"""The GPU tests: marked ``gpu`` (each module sets ``pytestmark``), deselected by the default
run, run with ``pytest -m gpu``; without CUDA each is skipped, saying why."""

from __future__ import annotations

import pytest
import torch

NO_CUDA = "needs a CUDA GPU: torch.cuda.is_available() is False (torch {})"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and not torch.cuda.is_available():
        pytest.skip(NO_CUDA.format(torch.__version__))


@pytest.fixture
def exact_float32():
    """float32 convolutions and matmuls without TF32, so float32 results are float32's."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
