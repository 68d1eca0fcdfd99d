"""The pure-PyTorch statement of Spherical Embedding Expansion (SEE).

This module is the specification that every fused kernel is tested against. It
follows docs/method.md section by section (the `§` comments), uses its
symbols, and prefers plain code over fast code. Every function is
differentiable with autograd, runs on any device, uses PyTorch alone (the noise
too: see_cuda.noise), and assumes its input was validated by the public API
(`see_cuda.validation`).
"""
from __future__ import annotations

import functools
import math

import torch

from . import composition, validation
from .composition import SEEPrimitives
from .constants import NORM_EPS
from .noise import draw_seed, philox_normal
from .options import PROXY_ANCHOR, ProxyAnchorSettings, SEEOptions, resolve_options

# §3.6: a source whose residual keeps at most AXIS_ROUNDING·η·|ẑ| off the axis is on it (η: unit_roundoff).
AXIS_ROUNDING = 8.0


def unit_roundoff(dtype: torch.dtype) -> float:
    """η = 2^-p of a floating dtype (2^-24 for float32, 2^-53 for float64): half its machine epsilon."""
    return torch.finfo(dtype).eps / 2


def span_rounding(m: int) -> float:
    """§3.2: (m + 1)(1 + √m), the most of a draw's length, in units of η, that rounding leaves of a
    draw in the span of the m frame vectors it is orthogonalised against."""
    return (m + 1) * (1 + math.sqrt(m))


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows of `x` divided by sqrt(|x|^2 + 1e-12), as the original code does."""
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + NORM_EPS)


def _safe_norm(v: torch.Tensor) -> torch.Tensor:
    """|v| over the last axis whose gradient is 0 (not NaN) at v = 0."""
    sq = (v * v).sum(-1)
    nonzero = sq > 0
    return torch.where(nonzero, torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def orthogonal_unit(w: torch.Tensor) -> torch.Tensor:
    """A deterministic unit vector orthogonal to each unit row of `w`.

    The standard basis vector of the coordinate where |w| is smallest, projected
    off w and normalised; that coordinate has |w_j| <= 1/sqrt(D), so the residual
    keeps a norm of at least sqrt(1 - 1/D) and the result is well conditioned.
    Used where the geometry leaves a direction undefined (§3.6, slerp at the antipode).
    """
    j = w.abs().argmin(-1, keepdim=True)
    e = torch.zeros_like(w).scatter_(-1, j, 1.0)
    e = e - (e * w).sum(-1, keepdim=True) * w
    return e / torch.sqrt((e * e).sum(-1, keepdim=True))


# ---------------------------------------------------------------- §3.3 MMD centers
def mmd_centers(num_centers: int, dim: int, radius: float = 1.0) -> torch.Tensor:
    """Max-Mahalanobis centers: `num_centers` points in R^dim on a sphere of `radius`.

    Pang et al.'s triangular recursion, in float64: row 0 is e_1, every pair of
    rows has inner product -radius^2/(num_centers-1), and row i is zero beyond
    column i (the last row's diagonal, 0 in exact arithmetic, is set to 0).
    Needs dim >= num_centers - 1. Returns a num_centers x dim float64 tensor.
    """
    L = num_centers
    centers = torch.zeros(L, dim, dtype=torch.float64)
    centers[0, 0] = 1.0
    n = L - 1
    for i in range(1, L):
        centers[i, 0] = -1.0 / n
        for j in range(1, i):
            dot = (centers[i, :j] * centers[j, :j]).sum()
            centers[i, j] = (-1.0 / n - dot) / centers[j, j]
        if i < n:
            centers[i, i] = torch.sqrt(torch.clamp(1.0 - (centers[i, :i] ** 2).sum(), min=0.0))
    return centers * radius


@functools.lru_cache(maxsize=None)
def _simplex_coefficients(n: int) -> torch.Tensor:
    """Bw[1:, :n] of §3.3, built once per n (the recursion is a Python loop)."""
    return mmd_centers(n + 1, n + 1)[1:, :n]


# ---------------------------------------------------------------- §3 expansion
def spherical_expansion(
    z: torch.Tensor,
    w: torch.Tensor,
    n_expansion: int,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The SEE expansion of k samples about their proxies (docs/method.md §3).

    Args:
        z: k x D source embeddings (normalised here, as x̂).
        w: k x D proxy of each source's class (normalised here, as p̂).
        n_expansion: n, synthetic points per source; needs D >= n + 1.
        noise: k x (n-1) x D Gaussian draws that define the random frame; drawn
            with `generator` when omitted.
    Returns:
        k x n x D unit vectors: each source rotated about its proxy axis to the
        n other vertices of a regular simplex.
    """
    n = n_expansion
    k, D = z.shape
    if noise is None:
        noise = expansion_noise(k, n, D, z.dtype, z.device, generator)
    z = l2_normalize(z)
    w = l2_normalize(w)

    # §3.1 the component of z along w, and the unit direction of the rest.
    a = (z * w).sum(-1, keepdim=True)
    M = a * w
    r = z - M
    rho = _safe_norm(r).unsqueeze(-1)
    # §3.6: z on its proxy's axis, to rounding: ρ_r = 0, and any u ⊥ w will do.
    degenerate = on_the_axis(a, r, rho, w)
    u = torch.where(degenerate, orthogonal_unit(w), r / torch.where(degenerate, torch.ones_like(rho), rho))
    rho = torch.where(degenerate, torch.zeros_like(rho), rho)

    # §3.2 Gram-Schmidt of the noise against w, u and the earlier directions,
    # twice: one pass leaves errors of (conditioning x rounding) when a draw lies
    # close to the span (likely when D is near n + 1); the second pass makes the
    # frame orthonormal to rounding. Both passes define the same function. A
    # draw left with rounding alone lies in the span: its sample's points are NaN.
    frame = [w, u]
    in_span = torch.zeros(k, 1, dtype=torch.bool, device=z.device)
    for j in range(n - 1):
        g = noise[:, j]
        with torch.no_grad():
            draw_sq = (g * g).sum(-1, keepdim=True)
        for _ in range(2):
            for f in frame:
                g = g - (g * f).sum(-1, keepdim=True) * f
        residual_sq = (g * g).sum(-1, keepdim=True)
        tau = span_rounding(len(frame)) * unit_roundoff(z.dtype)
        lost = residual_sq.detach() <= tau * tau * draw_sq
        in_span = in_span | lost
        frame.append(g / torch.sqrt(torch.where(lost, torch.ones_like(residual_sq), residual_sq)))
    f = torch.stack(frame[1:], dim=1)  # k x n x D: f_0 = u, f_j = v_{j+1}

    # §3.3-3.4 rows 1..n of the simplex coefficients; row 0 would give z back.
    Bw = _simplex_coefficients(n).to(dtype=z.dtype, device=z.device)
    points = M.unsqueeze(1) + rho.unsqueeze(1) * torch.einsum("kj,ijd->ikd", Bw, f)
    # A factor, not a where(): the gradient of an undefined sample is NaN too, the others' untouched.
    undefined = torch.where(in_span, torch.full_like(rho, math.nan), torch.ones_like(rho))
    return points * undefined.unsqueeze(1)


def on_the_axis(a: torch.Tensor, r: torch.Tensor, rho: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """§3.6: whether the residual r = ẑ - aŵ is rounding alone (k x 1 booleans, no gradient).

    Computed, r keeps a part along ŵ even for z on the axis (the rounding of
    a, and the ε that makes |ŵ| < 1); what decides is r_⊥, its part
    orthogonal to ŵ, which is then the rounding of the coordinates of the
    input, ẑ, ŵ and aŵ alone (4η|ẑ| at most). On the axis: |r_⊥| <= 8η|ẑ|,
    with |ẑ|² = a² + ρ_r² (to rounding).
    """
    with torch.no_grad():
        w_sq = (w * w).sum(-1, keepdim=True)
        along = torch.where(w_sq > 0, (r * w).sum(-1, keepdim=True) / torch.where(w_sq > 0, w_sq, 1.0), 0.0)
        perp = r - along * w
        perp_sq = (perp * perp).sum(-1, keepdim=True)
        tau = AXIS_ROUNDING * unit_roundoff(r.dtype)
        return perp_sq <= tau * tau * (a * a + rho * rho)


# ---------------------------------------------------------------- slerp (§6)
def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Geodesic interpolation on the unit sphere, batched over leading axes.

    a, b: (..., D), normalised here; t: a float or a tensor broadcastable to
    a.shape[:-1]. Returns (..., D) unit vectors cos(tθ)·â + sin(tθ)·e, with e the
    unit tangent at â towards b̂. As θ → 0 the weights go to the straight line
    (no 0/0); at the antipode, where the geodesic is not unique, e is
    `orthogonal_unit(â)`.
    """
    a = l2_normalize(a)
    b = l2_normalize(b)
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device).unsqueeze(-1)
    chord_minus = _safe_norm(a - b).unsqueeze(-1)
    chord_plus = _safe_norm(a + b).unsqueeze(-1)
    theta = 2.0 * torch.atan2(chord_minus, chord_plus)  # accurate at both ends
    antipodal = chord_plus == 0
    # The tangent b - cos(θ)·a, of norm sin θ, from the nearer chord so that it
    # keeps its relative accuracy at both ends: 1 - cos θ = |a-b|²/2, 1 + cos θ = |a+b|²/2.
    tangent = torch.where(
        chord_minus <= chord_plus, (b - a) + 0.5 * chord_minus**2 * a, (a + b) - 0.5 * chord_plus**2 * a
    )
    # sin(tθ)/sin(θ) written with sinc so that θ → 0 is 0/0-free: t·sinc(tθ)/sinc(θ).
    sinc_theta = torch.where(antipodal, torch.ones_like(theta), torch.sinc(theta / math.pi))
    ratio = t * torch.sinc(t * theta / math.pi) / sinc_theta
    tangent_part = torch.where(antipodal, torch.sin(t * theta) * orthogonal_unit(a), ratio * tangent)
    return torch.cos(t * theta) * a + tangent_part


# ---------------------------------------------------------------- §1 Proxy-Anchor
def _log1p_sum_exp(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log(1 + Σ_i exp(logits[i, c])) over the rows where mask is set, per column.

    Computed as softplus(logsumexp) so that large α and fp16 cannot overflow; a
    column with no row gives 0 with a zero gradient.
    """
    masked = logits.masked_fill(~mask, float("-inf"))
    has_term = mask.any(0)
    shift = torch.where(has_term, masked.amax(0), torch.zeros_like(masked[0])).detach()
    sum_exp = torch.where(mask, torch.exp(masked - shift), torch.zeros_like(logits)).sum(0)
    lse = shift + torch.log(torch.where(has_term, sum_exp, torch.ones_like(sum_exp)))
    return torch.where(has_term, _softplus(lse), torch.zeros_like(lse))


def _softplus(v: torch.Tensor) -> torch.Tensor:
    """log(1 + e^v) exactly; torch's softplus turns linear above 20, off by 2e-9.

    |v| is written as a where() that takes v at 0, where clamp's derivative is
    also 1: the derivative at v = 0 is then 1 - 1/2 = σ(0) (abs' = 0 there would
    give 1, twice the gradient of a term whose logits are exactly 0).
    """
    return torch.clamp(v, min=0) + torch.log1p(torch.exp(-torch.where(v >= 0, v, -v)))


def proxy_anchor_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    proxies: torch.Tensor,
    alpha: float = PROXY_ANCHOR.alpha,
    margin: float = PROXY_ANCHOR.margin,
) -> torch.Tensor:
    """Proxy-Anchor loss (docs/method.md §1) of B x D embeddings with labels in [0, C).

    Computed in the promoted dtype of x and proxies. Gradients reach x and proxies.
    It is the share of all C classes: proxy_anchor_share with offset 0.
    """
    return proxy_anchor_share(x, y, proxies, 0, proxies.shape[0], alpha, margin)


def proxy_anchor_share(
    x: torch.Tensor,
    y: torch.Tensor,
    proxies_local: torch.Tensor,
    class_offset: int,
    total_classes: int,
    alpha: float = PROXY_ANCHOR.alpha,
    margin: float = PROXY_ANCHOR.margin,
) -> torch.Tensor:
    """The Proxy-Anchor terms of the classes [class_offset, class_offset + C_local), with the weights of all.

    proxies_local (C_local x D) are those classes' proxies out of `total_classes`.
    Labels are global: a row whose label lies in [0, total_classes) but outside
    the local range is a negative of every local proxy. The weights are those
    of the whole loss (docs/method.md §1): 1/total_classes for the negative
    terms, 1/|P+| for the positive terms, P+ the classes present among all of
    `y`. The shares of a partition of the classes therefore sum to the loss.
    A label outside [0, total_classes) makes the share and its gradients NaN,
    for a share of no class too. class_offset and total_classes must be ints
    with 0 <= class_offset <= total_classes - C_local (ValueError/TypeError
    naming them), as the compiled op requires.
    """
    C_local = proxies_local.shape[0]
    validation.check_class_shard(C_local, class_offset, total_classes)
    dtype = torch.promote_types(x.dtype, proxies_local.dtype)
    x, proxies_local = x.to(dtype), proxies_local.to(dtype)
    # A row of an invalid label is multiplied by NaN (a fill would leave its own gradient finite):
    # its cosines, every term it enters and so the share and all gradients are NaN.
    invalid = (y < 0) | (y >= total_classes)
    x_hat = l2_normalize(x) * torch.where(invalid, float("nan"), 1.0).to(dtype).unsqueeze(-1)
    s = x_hat @ l2_normalize(proxies_local).t()  # B x C_local cosines s_ic
    local_class = torch.arange(class_offset, class_offset + C_local, device=y.device)
    share = proxy_anchor_of_cosines(s, y.unsqueeze(-1) == local_class, num_distinct(y), total_classes, alpha, margin)
    if C_local == 0:
        # No term for a NaN row to enter: the rows enter a term of 0 that is NaN where a label is invalid,
        # so that the share and every gradient are NaN there too, as the op's.
        share = share + (x_hat * torch.where(invalid.any(), float("nan"), 0.0).to(dtype)).sum()
    return share


def proxy_anchor_of_cosines(s: torch.Tensor, positive: torch.Tensor, num_positive_classes: torch.Tensor,
                            total_classes: int, alpha: float, margin: float) -> torch.Tensor:
    """The Proxy-Anchor terms of B x C cosines s (positive: B x C, row i of class c), weighted as the loss.

    Each term is log(1 + Σ exp(±α(s ∓ δ))) over its column's rows: 1-Lipschitz in
    the largest change of its logits, so that cosines moved by at most ε move
    this by at most 2αε (README, "Products").
    """
    pos_term = _log1p_sum_exp(-alpha * (s - margin), positive)
    neg_term = _log1p_sum_exp(alpha * (s + margin), ~positive)
    # Each term divided before the sum: the sum of C terms could overflow where their mean does not.
    return (pos_term / num_positive_classes.clamp(min=1)).sum() + (neg_term / total_classes).sum()


def num_distinct(labels: torch.Tensor) -> torch.Tensor:
    """How many distinct values `labels` holds, as a 0-d tensor (no host synchronisation)."""
    ordered = torch.sort(labels).values
    return (ordered[1:] != ordered[:-1]).sum() + (labels.numel() > 0)


def proxy_anchor_loss_with_synthetic(
    x: torch.Tensor,
    y: torch.Tensor,
    proxies: torch.Tensor,
    synthetic: torch.Tensor,
    synthetic_labels: torch.Tensor,
    lam: float,
    alpha: float = PROXY_ANCHOR.alpha,
    margin: float = PROXY_ANCHOR.margin,
) -> torch.Tensor:
    """PA(x, y, P) + λ·PA(synthetic, synthetic_labels, P) (§4), the second term 0 without rows.

    Gradients reach x, proxies and synthetic; SEE passes detached synthetic points.
    """
    loss = proxy_anchor_loss(x, y, proxies, alpha, margin)
    if synthetic.shape[0] == 0:
        return loss
    return loss + lam * proxy_anchor_loss(synthetic, synthetic_labels, proxies, alpha, margin)


# ---------------------------------------------------------------- §2 + §4 SEE loss
def class_proxies(proxies: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The proxy row of each label: p_{y_i} (labels already checked to lie in [0, C))."""
    return proxies[labels]


def row_cosines(x: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """x̂_i · â_i per row, detached, in float32 at least (§2).

    Half precision would tie cosines that differ, and the selection would then
    hinge on how ties are broken.
    """
    dtype = torch.promote_types(torch.promote_types(x.dtype, axes.dtype), torch.float32)
    with torch.no_grad():
        return (l2_normalize(x.to(dtype)) * l2_normalize(axes.to(dtype))).sum(-1)


def positive_cosines(x: torch.Tensor, y: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
    """s_i = x̂_i · p̂_{y_i}, detached (§2)."""
    return row_cosines(x, class_proxies(proxies, y))


def draws_of_seed(seed: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
    """Elements 0 .. numel-1 of the stream `seed` (§5) in draw_dtype(dtype), given in `dtype`."""
    return philox_normal(seed, shape, draw_dtype(dtype)).to(dtype)


def expansion_noise(
    num_selected: int, n_expansion: int, dim: int, dtype: torch.dtype, device, generator=None
) -> torch.Tensor:
    """The Gaussian draws behind the random frames: k x (n-1) x D (§5).

    One draw of `generator` gives the seed of a counter-based stream
    (see_cuda.noise), whose element i is a function of the seed and i alone,
    so that kernels can produce any sample's draws where they need them and
    the same generator state gives the same synthetic points in every
    implementation. Drawn in float64 for float64 work and in float32
    otherwise, so that a half-precision run sees the draws of its float32
    counterpart.
    """
    return draws_of_seed(draw_seed(generator, device), (num_selected, n_expansion - 1, dim), dtype)


def draw_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision of the draws for work in `dtype`: float64 for float64, float32 otherwise.

    It is also the precision the compiled kernels work in (see_cuda.fused.kernel_dtype).
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def _expand(z: torch.Tensor, w: torch.Tensor, n: int, noise: torch.Tensor) -> torch.Tensor:
    dtype = torch.promote_types(z.dtype, w.dtype)
    return spherical_expansion(z.to(dtype), w.to(dtype), n, noise.to(dtype))


def proxy_anchor_primitive(x, y, proxies, synthetic, synthetic_labels, settings: ProxyAnchorSettings, lam,
                           synthetic_grad=False):
    """Proxy-Anchor as the composition's scoring primitive (composition.SEEPrimitives.loss)."""
    # Autograd decides where gradients go: synthetic_grad is what the kernels need told.
    if synthetic is None:
        return proxy_anchor_loss(x, y, proxies, settings.alpha, settings.margin)
    return proxy_anchor_loss_with_synthetic(x, y, proxies, synthetic, synthetic_labels, lam, settings.alpha,
                                            settings.margin)


# The steps of the SEE loss with Proxy-Anchor; see_cuda.fused.PRIMITIVES mirrors them.
PRIMITIVES = SEEPrimitives(
    class_proxies=class_proxies, positive_cosines=row_cosines, draw_seed=draw_seed, draws=draws_of_seed,
    expand=_expand, loss=proxy_anchor_primitive,
)


def see_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    proxies: torch.Tensor,
    options: SEEOptions | None = None,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    return_stats: bool = False,
    **settings,
):
    """SEE loss (§4): PA(x, y, P) + λ · PA(Z, y_Z, P), Z the synthetic points.

    The settings come as one SEEOptions or as its fields by keyword
    (n_expansion=16, lam=0.2, ...; see SEEOptions), not both. `noise`,
    when given, is B x (n-1) x D (one slice per batch row; the selected rows'
    slices are used); otherwise k x (n-1) x D draws come from `generator`.
    With `detach_synthetic` (the original) the synthetic term trains only the
    proxies; without it, gradients also flow back to x through the expansion.
    Returns the loss, or (loss, SEEStats) with `return_stats`.
    """
    options = resolve_options(options, **settings)
    loss, stats = composition.see_loss(x, y, proxies, options.expansion, options.loss, PRIMITIVES, generator, noise)
    return (loss, stats) if return_stats else loss
