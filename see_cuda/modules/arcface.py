"""ArcFace as pytorch-metric-learning's ArcFaceLoss, with SEE when asked (docs/method.md §7)."""
from __future__ import annotations

from ..loss_settings import ArcFaceSettings
from .weight_matrix import WeightMatrixLoss


class ArcFaceLoss(WeightMatrixLoss):
    """`ArcFaceLoss(num_classes, embedding_size, *, margin=28.6, scale=64, expansion=None, ...)`, margin in degrees;
    `W` D x C (see_cuda.modules.weight_matrix)."""

    def __init__(self, num_classes: int, embedding_size: int, *positional, margin: float = 28.6,
                 scale: float = 64.0, **keywords):
        super().__init__(num_classes, embedding_size, positional, ArcFaceSettings(margin, scale), **keywords)
