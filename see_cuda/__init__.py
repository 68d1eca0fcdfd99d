"""see_cuda: fused kernels for Spherical Embedding Expansion (SEE) in PyTorch.

    loss_fn = see_cuda.SEEProxyAnchorLoss(num_classes, embedding_size)
    loss = loss_fn(embeddings, labels)

or functionally `see_cuda.fused_see_loss(embeddings, labels, proxies)`. The pure
PyTorch statement of the method lives in `see_cuda.reference`; `see_cuda.sharded`
holds the loss with its proxies sharded over processes, for many classes.
"""
from . import sharded  # noqa: F401  (see_cuda.sharded: the proxies over several processes)
from ._extension import backends
from ._version import __version__
from .deferred_checks import wait_for_value_checks
from .functional import (
    fraction_schedule,
    fused_see_loss,
    mmd_centers,
    proxy_anchor_loss,
    proxy_anchor_loss_with_synthetic,
    select_for_expansion,
    slerp,
    spherical_expansion,
    threshold_schedule,
)
from .loss_settings import ArcFaceSettings, CosFaceSettings, NormalizedSoftmaxSettings, ProxyNCASettings
from .losses import SEEProxyAnchorLoss
from .modules import ArcFaceLoss, CosFaceLoss, NormalizedSoftmaxLoss, ProxyAnchorLoss, ProxyNCALoss
from .options import ProxyAnchorSettings, SEEOptions, SphericalExpansion
from .softmax_functional import (
    arcface_loss,
    cosface_loss,
    normalized_softmax_loss,
    proxy_nca_loss,
    softmax_family_see_loss,
)
from .stats import SEEStats

__all__ = [
    "ArcFaceLoss",
    "ArcFaceSettings",
    "CosFaceLoss",
    "CosFaceSettings",
    "NormalizedSoftmaxLoss",
    "NormalizedSoftmaxSettings",
    "ProxyAnchorLoss",
    "ProxyAnchorSettings",
    "ProxyNCALoss",
    "ProxyNCASettings",
    "arcface_loss",
    "cosface_loss",
    "normalized_softmax_loss",
    "proxy_nca_loss",
    "softmax_family_see_loss",
    "__version__",
    "SEEOptions",
    "SEEProxyAnchorLoss",
    "SEEStats",
    "SphericalExpansion",
    "backends",
    "fraction_schedule",
    "fused_see_loss",
    "mmd_centers",
    "proxy_anchor_loss",
    "proxy_anchor_loss_with_synthetic",
    "select_for_expansion",
    "slerp",
    "spherical_expansion",
    "threshold_schedule",
    "wait_for_value_checks",
]
