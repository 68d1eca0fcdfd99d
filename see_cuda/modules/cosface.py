"""CosFace as pytorch-metric-learning's CosFaceLoss, with SEE when asked (docs/method.md §7)."""
from __future__ import annotations

import torch
from torch import nn

from ..loss_settings import CosFaceSettings
from ..softmax_functional import softmax_family_see_loss
from .base import ClassVectorLoss


class CosFaceLoss(ClassVectorLoss):
    """`CosFaceLoss(num_classes, embedding_size, *, margin=0.35, scale=64, expansion=None, ...)`.

    `W` D x C (standard normal, as PML), read in place as C x D class vectors.
    Other keywords: see_cuda.modules.base.ClassVectorLoss.
    """

    def __init__(self, num_classes: int, embedding_size: int, *positional, margin: float = 0.35,
                 scale: float = 64.0, **keywords):
        super().__init__(num_classes, embedding_size, positional, CosFaceSettings(margin, scale), **keywords)
        self.W = nn.Parameter(nn.init.normal_(torch.empty(embedding_size, num_classes)))

    def _loss(self, embeddings, labels):
        return softmax_family_see_loss(embeddings, labels, self.W.t(), self.settings, **self.call_keywords())
