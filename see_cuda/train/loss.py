"""The training loss: Proxy-Anchor (pa) or SEE (see), one module owning the proxies either way."""
from __future__ import annotations

import torch

from .. import modules
from ..loss_settings import ArcFaceSettings, CosFaceSettings, NormalizedSoftmaxSettings, ProxyNCASettings
from ..losses import SEEProxyAnchorLoss
from ..options import SphericalExpansion
from ..sharded import ShardedSEEProxyAnchorLoss, ShardedSoftmaxFamilyLoss

# Offsets of the seeds of the independent random streams, so that PA and SEE
# runs of one seed see the same initial weights, batches and augmentations.
LOSS_SEED_OFFSET = 2_000_003
# PA runs are the module without expansion: the same proxies, initialised alike.
MODES = {"pa": "none", "see": "fraction"}
BASE_MODULES = {"proxy-nca": modules.ProxyNCALoss, "normalized-softmax": modules.NormalizedSoftmaxLoss,
                "cosface": modules.CosFaceLoss, "arcface": modules.ArcFaceLoss}
# Sharded, the same losses at the same (PML's) defaults.
BASE_SETTINGS = {"proxy-nca": ProxyNCASettings, "normalized-softmax": NormalizedSoftmaxSettings,
                 "cosface": CosFaceSettings, "arcface": ArcFaceSettings}


def build_loss(config, num_classes: int) -> SEEProxyAnchorLoss:
    """The module that computes the run's loss (config.loss) and owns its proxies.

    With config.shard_proxies, the sharded module: this process's classes only, its initial
    proxies the rows of one matrix seeded by the run's seed (the same whatever the world size),
    its rows' gradient scaled for the network's DistributedDataParallel (ddp_gradients); for the
    softmax family, ShardedSoftmaxFamilyLoss holding its shard in the layout of the loss's module.
    """
    settings = dict(
        n_expansion=config.n_expansion, lam=config.lam, mode=MODES[config.loss], num_epochs=config.schedule_span,
        rho_min=config.rho_min, rho_max=config.rho_max, alpha=config.alpha, margin=config.margin,
        generator=torch.Generator().manual_seed(config.seed + LOSS_SEED_OFFSET), implementation=config.implementation,
    )
    if config.base_loss in BASE_MODULES:
        expansion = SphericalExpansion(n_expansion=config.n_expansion, lam=config.lam) if config.loss == "see" else None
        keywords = dict(expansion=expansion, num_epochs=config.epochs, rho_min=config.rho_min,
                        rho_max=config.rho_max, generator=settings["generator"], implementation=config.implementation)
        if config.shard_proxies:
            return ShardedSoftmaxFamilyLoss(num_classes, config.embedding_size, BASE_SETTINGS[config.base_loss](),
                                            init_seed=config.seed + LOSS_SEED_OFFSET, ddp_gradients=True, **keywords)
        return BASE_MODULES[config.base_loss](num_classes, config.embedding_size, **keywords)
    if config.shard_proxies:
        return ShardedSEEProxyAnchorLoss(num_classes, config.embedding_size, init_seed=config.seed + LOSS_SEED_OFFSET,
                                         ddp_gradients=True, **settings)
    return SEEProxyAnchorLoss(num_classes, config.embedding_size, **settings)
