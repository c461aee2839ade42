"""Data sets as in-memory tensors: digits, synthetic, a user's npz, torchvision on disk."""

from .config import DataConfig
from .datasets import Dataset, load_data, standardize, symmetric_range

__all__ = ["DataConfig", "Dataset", "load_data", "standardize", "symmetric_range"]
