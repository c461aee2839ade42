"""``dense``: ordinary training, the baseline every other method is compared with."""

from __future__ import annotations

from typing import Literal

from .base import Method, MethodConfig, register_method


class DenseConfig(MethodConfig):
    name: Literal["dense"] = "dense"


@register_method
class Dense(Method):
    """The model as it is, every backward pass dense."""

    name = "dense"
    config_class = DenseConfig
