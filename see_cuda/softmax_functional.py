"""The softmax-family losses as functions (docs/method.md §7), plain or with SEE.

One entry point, `softmax_family_see_loss`, validates once and runs the SEE
composition (see_cuda.composition: select, expand, score) with the family's
scoring step; the per-loss functions beside it take PML's parameter layout
(`proxies` C x D for Proxy-NCA, `W` D x C for the others) and its settings.
"""
from __future__ import annotations

import torch

from . import validation
from .functional import see_loss
from .loss_settings import SOFTMAX_FAMILY, ArcFaceSettings, CosFaceSettings, NormalizedSoftmaxSettings, ProxyNCASettings
from .options import NO_EXPANSION, SphericalExpansion


def checked_family_arguments(settings, expansion: SphericalExpansion | None) -> SphericalExpansion:
    """The expansion to run (None: none), after checking that settings and expansion are of their kinds."""
    if not isinstance(settings, SOFTMAX_FAMILY):
        raise TypeError(f"settings must be one of {[s.__name__ for s in SOFTMAX_FAMILY]}, "
                        f"got {type(settings).__name__}")
    expansion = NO_EXPANSION if expansion is None else expansion
    if not isinstance(expansion, SphericalExpansion):
        raise TypeError(f"expansion must be a see_cuda.SphericalExpansion or None, got {type(expansion).__name__}")
    return expansion


def softmax_family_see_loss(embeddings: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor, settings, *,
                            expansion: SphericalExpansion | None = None, generator: torch.Generator | None = None,
                            noise: torch.Tensor | None = None, implementation: str = "auto",
                            check_values: bool = True, chunk_bytes: int | None = None):
    """(loss, SEEStats) of L(X) + λ·L(Z) (docs/method.md §7) for the loss `settings` describes.

    classes: C x D class vectors, any strides (W.t() of a D x C W is read in place).
    settings: a ProxyNCASettings, NormalizedSoftmaxSettings, CosFaceSettings or ArcFaceSettings.
    expansion: a SphericalExpansion, or None for the plain loss. generator / noise: as fused_see_loss.
    implementation: "auto", "fused" or "reference". chunk_bytes: the compiled kernels form the cosines of all
    N rows (batch and synthetic) with chunks of at most chunk_bytes / (N·itemsize) classes (None: 256 MiB), so
    their memory is O(N x chunk) for any C; the reference forms the whole N x C matrix.
    """
    expansion = checked_family_arguments(settings, expansion)
    return see_loss(embeddings, labels, classes, expansion, settings, generator, noise, implementation, check_values,
                    chunk_bytes)


def _layout_W(W: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """W (D x C, PML's layout) as C x D class vectors, a view."""
    validation.check_float_matrix(W, "W", "(D, C)")
    if embeddings.dim() == 2 and W.shape[0] != embeddings.shape[1]:
        raise ValueError(f"W must have shape ({embeddings.shape[1]}, C) to match embeddings' D = "
                         f"{embeddings.shape[1]}, got {tuple(W.shape)}")
    return W.t()


def _loss(embeddings, labels, classes, settings, return_stats, **keywords):
    loss, stats = softmax_family_see_loss(embeddings, labels, classes, settings, **keywords)
    return (loss, stats) if return_stats else loss


def proxy_nca_loss(embeddings, labels, proxies, *, softmax_scale: float = 1.0, return_stats: bool = False,
                   **keywords):
    """Proxy-NCA (PML's ProxyNCALoss; docs/method.md §7) of B x D embeddings and C x D proxies.

    keywords: expansion, generator, noise, implementation, check_values, chunk_bytes
    (softmax_family_see_loss). Returns the loss, or (loss, SEEStats).
    """
    return _loss(embeddings, labels, proxies, ProxyNCASettings(softmax_scale), return_stats, **keywords)


def normalized_softmax_loss(embeddings, labels, W, *, temperature: float = 0.05, return_stats: bool = False,
                            **keywords):
    """Normalized Softmax (PML's NormalizedSoftmaxLoss) of B x D embeddings and the D x C W."""
    return _loss(embeddings, labels, _layout_W(W, embeddings), NormalizedSoftmaxSettings(temperature),
                 return_stats, **keywords)


def cosface_loss(embeddings, labels, W, *, margin: float = 0.35, scale: float = 64.0, return_stats: bool = False,
                 **keywords):
    """CosFace (PML's CosFaceLoss) of B x D embeddings and the D x C W."""
    return _loss(embeddings, labels, _layout_W(W, embeddings), CosFaceSettings(margin, scale), return_stats,
                 **keywords)


def arcface_loss(embeddings, labels, W, *, margin: float = 28.6, scale: float = 64.0, return_stats: bool = False,
                 **keywords):
    """ArcFace (PML's ArcFaceLoss; margin in degrees) of B x D embeddings and the D x C W."""
    return _loss(embeddings, labels, _layout_W(W, embeddings), ArcFaceSettings(margin, scale), return_stats,
                 **keywords)

