"""Proxy-NCA as pytorch-metric-learning's ProxyNCALoss, with SEE when asked (docs/method.md §7)."""
from __future__ import annotations

import torch
from torch import nn

from ..loss_settings import ProxyNCASettings
from ..softmax_functional import softmax_family_see_loss
from .base import ClassVectorLoss


class ProxyNCALoss(ClassVectorLoss):
    """`ProxyNCALoss(num_classes, embedding_size, *, softmax_scale=1, expansion=None, ...)`.

    `proxies` C x D (standard normal, as PML). Other keywords: see_cuda.modules.base.ClassVectorLoss.
    """

    def __init__(self, num_classes: int, embedding_size: int, *positional, softmax_scale: float = 1.0, **keywords):
        super().__init__(num_classes, embedding_size, positional, ProxyNCASettings(softmax_scale), **keywords)
        self.proxies = nn.Parameter(nn.init.normal_(torch.empty(num_classes, embedding_size)))

    def _loss(self, embeddings, labels):
        return softmax_family_see_loss(embeddings, labels, self.proxies, self.settings, **self.call_keywords())
