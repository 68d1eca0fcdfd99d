"""The training loss: Proxy-Anchor (pa) or SEE (see), both on the proxies of one module."""
from __future__ import annotations

import torch

from ..functional import fused_see_loss, proxy_anchor_loss
from ..losses import SEEProxyAnchorLoss

# Offsets of the seeds of the independent random streams, so that PA and SEE
# runs of one seed see the same initial weights, batches and augmentations.
LOSS_SEED_OFFSET = 2_000_003


def build_loss(config, num_classes: int) -> SEEProxyAnchorLoss:
    """The module owning the proxies; PA runs use its proxies and ignore its expansion settings."""
    return SEEProxyAnchorLoss(
        num_classes, config.embedding_size, n_expansion=config.n_expansion, lam=config.lam,
        num_epochs=config.epochs, rho_min=config.rho_min, rho_max=config.rho_max,
        alpha=config.alpha, margin=config.margin,
        generator=torch.Generator().manual_seed(config.seed + LOSS_SEED_OFFSET),
    )


def compute_loss(loss_fn: SEEProxyAnchorLoss, embeddings: torch.Tensor, labels: torch.Tensor, kind: str,
                 implementation: str = "auto"):
    """(loss, samples expanded) of the batch; the expansion follows loss_fn's epoch schedule."""
    if kind == "pa":
        loss = proxy_anchor_loss(embeddings, labels, loss_fn.proxies, loss_fn.alpha, loss_fn.margin,
                                 implementation=implementation)
        return loss, 0
    loss, stats = fused_see_loss(
        embeddings, labels, loss_fn.proxies, n_expansion=loss_fn.n_expansion, lam=loss_fn.lam, mode=loss_fn.mode,
        ratio=loss_fn.ratio, threshold=loss_fn.threshold, alpha=loss_fn.alpha, margin=loss_fn.margin,
        detach_synthetic=loss_fn.detach_synthetic, generator=loss_fn.generator, return_stats=True,
        implementation=implementation,
    )
    loss_fn.last_stats = stats
    return loss, stats.num_expanded
