"""Proxy-Anchor (Kim et al., 2020) as pytorch-metric-learning's ProxyAnchorLoss, with SEE when asked."""
from __future__ import annotations

import torch
from torch import nn

from ..functional import see_loss
from ..options import NO_EXPANSION, ProxyAnchorSettings
from .base import ClassVectorLoss


class ProxyAnchorLoss(ClassVectorLoss):
    """`ProxyAnchorLoss(num_classes, embedding_size, *, margin=0.1, alpha=32, expansion=None, ...)`.

    Proxy-Anchor (docs/method.md §1), with SEE (§4) when given an expansion.

    `proxies` (C x D, kaiming-normal with fan_out as in PML) is PML's
    parameter: PML's state dict loads strictly, and this one into PML. With
    `expansion=see_cuda.SphericalExpansion(...)` it is the SEE loss
    (see_cuda.SEEProxyAnchorLoss and see_cuda.fused_see_loss are other spellings
    of it). The other keywords: see_cuda.modules.base.ClassVectorLoss.
    """

    def __init__(self, num_classes: int, embedding_size: int, *positional, margin: float = 0.1,
                 alpha: float = 32.0, **keywords):
        super().__init__(num_classes, embedding_size, positional, ProxyAnchorSettings(alpha=alpha, margin=margin),
                         **keywords)
        proxies = torch.empty(num_classes, embedding_size)
        self.proxies = nn.Parameter(nn.init.kaiming_normal_(proxies, mode="fan_out"))

    def _loss(self, embeddings, labels):
        expansion = NO_EXPANSION if self.expansion is None else self.expansion
        return see_loss(embeddings, labels, self.proxies, expansion, self.settings, self.generator, None,
                        self.implementation, self.check_values, self.chunk_bytes)
