"""Normalized Softmax as pytorch-metric-learning's NormalizedSoftmaxLoss, with SEE when asked (docs/method.md §7)."""
from __future__ import annotations

import torch
from torch import nn

from ..loss_settings import NormalizedSoftmaxSettings
from ..softmax_functional import softmax_family_see_loss
from .base import ClassVectorLoss


class NormalizedSoftmaxLoss(ClassVectorLoss):
    """`NormalizedSoftmaxLoss(num_classes, embedding_size, *, temperature=0.05, expansion=None, ...)`.

    `W` D x C (standard normal, as PML), read in place as C x D class vectors.
    Other keywords: see_cuda.modules.base.ClassVectorLoss.
    """

    def __init__(self, num_classes: int, embedding_size: int, *positional, temperature: float = 0.05, **keywords):
        super().__init__(num_classes, embedding_size, positional, NormalizedSoftmaxSettings(temperature), **keywords)
        self.W = nn.Parameter(nn.init.normal_(torch.empty(embedding_size, num_classes)))

    def _loss(self, embeddings, labels):
        return softmax_family_see_loss(embeddings, labels, self.W.t(), self.settings, **self.call_keywords())
