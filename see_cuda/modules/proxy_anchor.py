"""Proxy-Anchor (Kim et al., 2020) as pytorch-metric-learning's ProxyAnchorLoss, with SEE when asked."""
from __future__ import annotations

import torch
from torch import nn

from ..expansion_options import SphericalExpansion
from ..functional import see_loss_with_options
from ..loss_settings import ProxyAnchorSettings
from ..options import SEEOptions
from .base import ClassVectorLoss


def see_options(settings: ProxyAnchorSettings, expansion: SphericalExpansion | None) -> SEEOptions:
    """The flat SEEOptions of Proxy-Anchor's settings and an expansion (None: plain Proxy-Anchor)."""
    if expansion is None:
        return SEEOptions(mode="none", alpha=settings.alpha, margin=settings.margin)
    return SEEOptions(n_expansion=expansion.n_expansion, lam=expansion.lam, mode=expansion.mode,
                      ratio=expansion.ratio, threshold=expansion.threshold, alpha=settings.alpha,
                      margin=settings.margin, detach_synthetic=expansion.detach_synthetic)


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
        options = see_options(self.settings, self.expansion)
        return see_loss_with_options(embeddings, labels, self.proxies, options, self.generator, None,
                                     self.implementation, self.check_values, self.chunk_bytes)
