"""What the softmax-family modules with PML's `W` share: the D x C parameter, read in place as C x D."""
from __future__ import annotations

import torch
from torch import nn

from ..softmax_functional import softmax_family_see_loss
from .base import ClassVectorLoss


class WeightMatrixLoss(ClassVectorLoss):
    """A softmax-family loss whose class vectors are PML's `W` (D x C, standard normal as PML), never copied:
    the kernels read `W.t()` as it is. A subclass passes its settings; other keywords: ClassVectorLoss."""

    def __init__(self, num_classes: int, embedding_size: int, positional: tuple, settings, **keywords):
        super().__init__(num_classes, embedding_size, positional, settings, **keywords)
        self.W = nn.Parameter(nn.init.normal_(torch.empty(embedding_size, num_classes)))

    def _loss(self, embeddings, labels):
        return softmax_family_see_loss(embeddings, labels, self.W.t(), self.settings, **self.call_keywords())
