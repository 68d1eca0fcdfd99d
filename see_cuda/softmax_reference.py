"""The pure-PyTorch statement of the softmax-family losses (docs/method.md §7).

Proxy-NCA, Normalized Softmax, CosFace and ArcFace differ only in their logit
map (see_cuda.loss_settings.LogitMap): the logits are an affine function of
the cosine, with a margin on the target class, and each row's term is the
cross entropy over the classes. Like see_cuda.reference this is the
specification the kernels are tested against, differentiable with autograd,
and assumes validated input.
"""
from __future__ import annotations

import math

import torch

from .loss_settings import ANGULAR_MARGIN, COSINE_MARGIN, LogitMap
from .reference import l2_normalize


def target_margin(s: torch.Tensor, logit_map: LogitMap) -> torch.Tensor:
    """f(s) of docs/method.md §7: the target's cosine after its margin."""
    m = logit_map.margin
    if logit_map.margin_kind == COSINE_MARGIN:
        return s - m
    if logit_map.margin_kind == ANGULAR_MARGIN:
        # cos(acos(s) + m) = s cos m - sin(acos s) sin m while acos(s) <= π - m, i.e. s >= -cos m;
        # beyond, PML's continuation s - m sin m keeps the logit falling.
        sine = torch.sqrt(torch.clamp(1 - s * s, min=0))
        return torch.where(s >= -math.cos(m), s * math.cos(m) - sine * math.sin(m), s - m * math.sin(m))
    return s


def row_terms(x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor, logit_map: LogitMap) -> torch.Tensor:
    """ℓ_i = LSE_c(z_ic) - z_iy per row (B), classes C x D (any strides: W.t() of a D x C W is read as it is).

    A label outside [0, C) makes its row NaN.
    """
    dtype = torch.promote_types(x.dtype, classes.dtype)
    x, classes = x.to(dtype), classes.to(dtype)
    C = classes.shape[0]
    invalid = (y < 0) | (y >= C)
    s = l2_normalize(x) @ l2_normalize(classes).t()  # B x C cosines
    safe_y = torch.where(invalid, torch.zeros_like(y), y).unsqueeze(1)
    s_target = s.gather(1, safe_y)
    target = torch.zeros_like(s, dtype=torch.bool).scatter_(1, safe_y, True)
    logits = logit_map.scale * torch.where(target, target_margin(s, logit_map), s) + logit_map.bias
    z_target = logit_map.scale * target_margin(s_target, logit_map).squeeze(1) + logit_map.bias
    terms = torch.logsumexp(logits, dim=1) - z_target
    return torch.where(invalid, torch.full_like(terms, math.nan), terms)


def softmax_family_loss(x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor, logit_map: LogitMap) -> torch.Tensor:
    """L(X, Y, P) = 1/B Σ_i ℓ_i (PML's mean reducer)."""
    return row_terms(x, y, classes, logit_map).mean()


def softmax_family_loss_with_synthetic(x, y, classes, synthetic, synthetic_labels, lam: float,
                                       logit_map: LogitMap) -> torch.Tensor:
    """L(X) + λ·L(Z) (docs/method.md §7), the second term 0 without synthetic rows."""
    loss = softmax_family_loss(x, y, classes, logit_map)
    if synthetic is None or synthetic.shape[0] == 0:
        return loss
    return loss + lam * softmax_family_loss(synthetic, synthetic_labels, classes, logit_map)


def loss(x, y, classes, synthetic, synthetic_labels, settings, lam, synthetic_grad=False):
    """The scoring primitive of the SEE composition (composition.SEEPrimitives.loss) for a softmax-family loss.

    settings: its settings (see_cuda.loss_settings), whose logit_map the loss reads.
    """
    return softmax_family_loss_with_synthetic(x, y, classes, synthetic, synthetic_labels, lam, settings.logit_map)
