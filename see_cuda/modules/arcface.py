"""ArcFace as pytorch-metric-learning's ArcFaceLoss, with SEE when asked (docs/method.md §7)."""
from __future__ import annotations

import torch
from torch import nn

from ..loss_settings import ArcFaceSettings
from ..softmax_functional import softmax_family_see_loss
from .base import ClassVectorLoss


class ArcFaceLoss(ClassVectorLoss):
    """`ArcFaceLoss(num_classes, embedding_size, *, margin=28.6, scale=64, expansion=None, ...)`, margin in degrees.

    `W` D x C (standard normal, as PML), read in place as C x D class vectors.
    Other keywords: see_cuda.modules.base.ClassVectorLoss.
    """

    def __init__(self, num_classes: int, embedding_size: int, *positional, margin: float = 28.6,
                 scale: float = 64.0, **keywords):
        super().__init__(num_classes, embedding_size, positional, ArcFaceSettings(margin, scale), **keywords)
        self.W = nn.Parameter(nn.init.normal_(torch.empty(embedding_size, num_classes)))

    def _loss(self, embeddings, labels):
        return softmax_family_see_loss(embeddings, labels, self.W.t(), self.settings, **self.call_keywords())
