"""Normalized Softmax as pytorch-metric-learning's NormalizedSoftmaxLoss, with SEE when asked (docs/method.md §7)."""
from __future__ import annotations

from ..loss_settings import NormalizedSoftmaxSettings
from .weight_matrix import WeightMatrixLoss


class NormalizedSoftmaxLoss(WeightMatrixLoss):
    """`NormalizedSoftmaxLoss(num_classes, embedding_size, *, temperature=0.05, expansion=None, ...)`; `W` D x C."""

    def __init__(self, num_classes: int, embedding_size: int, *positional, temperature: float = 0.05, **keywords):
        super().__init__(num_classes, embedding_size, positional, NormalizedSoftmaxSettings(temperature), **keywords)
