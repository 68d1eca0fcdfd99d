"""CosFace as pytorch-metric-learning's CosFaceLoss, with SEE when asked (docs/method.md §7)."""
from __future__ import annotations

from ..loss_settings import CosFaceSettings
from .weight_matrix import WeightMatrixLoss


class CosFaceLoss(WeightMatrixLoss):
    """`CosFaceLoss(num_classes, embedding_size, *, margin=0.35, scale=64, expansion=None, ...)`; `W` D x C."""

    def __init__(self, num_classes: int, embedding_size: int, *positional, margin: float = 0.35,
                 scale: float = 64.0, **keywords):
        super().__init__(num_classes, embedding_size, positional, CosFaceSettings(margin, scale), **keywords)
