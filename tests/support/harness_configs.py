"""Tiny synthetic configs for harness tests (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def tiny_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "tiny",
        "model": {"name": "cnn", "kwargs": {"depth": 2, "width": 4}},
        "data": {"name": "synthetic", "image_size": 8, "channels": 1, "samples": 80,
                 "batch_size": 16, "classes": 3},
        "train": {"epochs": 2, "lr": 0.05, "device": "cpu"},
        "methods": [{"name": "dense"}, {"name": "ssprop", "keep": 0.5, "interleave": True}],
        "seeds": [0],
        "energy": {"codecarbon": False, "idle_s": 0, "interval_s": 0.05},
        "inference": {"samples": 32},
        "output": str(tmp_path / "runs"),
    }  # fmt: skip
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, **overrides)))
    return path
