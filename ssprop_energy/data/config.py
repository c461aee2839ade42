"""The ``data:`` section of the config: which data set, at which size, in which batches."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DataConfig(BaseModel):
    """``digits`` (scikit-learn's bundled digits), ``synthetic``, ``npz`` or a torchvision set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "digits"
    image_size: int = Field(8, ge=1)
    channels: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    val_split: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0
    path: Path | None = None
    samples: int = Field(1024, ge=2)
    classes: int = Field(10, ge=2)
    download: bool = False

    @model_validator(mode="after")
    def _npz_file(self) -> DataConfig:
        if self.name == "npz":
            if self.path is None:
                raise ValueError("path: the npz data set needs a .npz file with x and y")
            if not self.path.is_file():
                raise ValueError(f"path: no such file: {self.path}")
        return self
