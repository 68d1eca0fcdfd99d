"""The public functions: validate once, then run the fused kernels or the reference.

Each function uses the compiled kernels when this install has them for the
input's device, and the reference path (same results, slower) otherwise;
`implementation="reference"` or `"fused"` forces one.
"""
from __future__ import annotations

import torch

from . import ops, reference, validation
from ._extension import has_kernel
from .noise import draw_seed
from .selection import num_selected_by_fraction, select_for_expansion
from .stats import SEEStats

IMPLEMENTATIONS = ("auto", "fused", "reference")
_NO_SEED = torch.zeros((), dtype=torch.int64)  # the fused loss's seed when the draws are given
# The whole SEE loss in one kernel call; where it is missing, the loss is composed of the other ops.
_WHOLE_LOSS_OP = "see_cuda::see_loss_fused"


def _use_fused(implementation: str, device: torch.device) -> bool:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    available = has_kernel(device.type)
    if implementation == "fused" and not available:
        raise RuntimeError(f"see_cuda was built without fused kernels for {device.type}; see see_cuda.backends()")
    return implementation == "fused" or (implementation == "auto" and available)


def _kernel_dtype(dtype: torch.dtype) -> torch.dtype:
    """The kernels run in float32 or float64; half precision is widened to float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def mmd_centers(num_centers: int, dim: int, radius: float = 1.0, device=None, implementation: str = "auto") -> torch.Tensor:
    """Max-Mahalanobis centers: num_centers x dim float64, pairwise inner product -radius²/(num_centers-1).

    Needs dim >= num_centers - 1. Row 0 is radius·e_1; row i is zero beyond column i.
    """
    validation.check_positive_int(num_centers, "num_centers")
    validation.check_positive_int(dim, "dim")
    validation.check_real(radius, "radius", low=0.0)
    if dim < num_centers - 1:
        raise ValueError(f"dim must be >= num_centers - 1 = {num_centers - 1} for a regular simplex, got {dim}")
    device = torch.device(device if device is not None else "cpu")
    if not _use_fused(implementation, device):
        return reference.mmd_centers(num_centers, dim, radius).to(device)
    return ops.mmd_centers_into(torch.empty(num_centers, dim, dtype=torch.float64, device=device), float(radius))


def spherical_expansion(
    z: torch.Tensor,
    w: torch.Tensor,
    n_expansion: int,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    implementation: str = "auto",
) -> torch.Tensor:
    """SEE expansion of k samples z (k x D) about their class proxies w (k x D).

    Returns k x n x D unit vectors with each source's cosine to its proxy, at
    the other n vertices of a regular simplex about the proxy axis (SEE_METHOD.md
    §3). The random frame comes from `noise` (k x (n-1) x D) or from `generator`.
    Gradients reach z; the fused kernel treats w as a constant, so when w needs
    a gradient the reference path runs instead.
    """
    validation.check_float_matrix(z, "z", "(k, D)")
    validation.check_float_matrix(w, "w", "(k, D)")
    if w.shape != z.shape:
        raise ValueError(f"w must have the shape of z {tuple(z.shape)}, got {tuple(w.shape)}")
    k, D = z.shape
    validation.check_dim_for_expansion(D, n_expansion)
    validation.check_noise(noise, k, n_expansion, D)
    validation.check_same_device({"z": z, "w": w, "noise": noise})
    validation.check_generator(generator, z.device)
    dtype = validation.compute_dtype(z, w)
    if noise is None:
        noise = reference.expansion_noise(k, n_expansion, D, dtype, z.device, generator)
    w_needs_grad = torch.is_grad_enabled() and w.requires_grad
    if w_needs_grad or not _use_fused(implementation, z.device):
        if implementation == "fused" and w_needs_grad:
            raise ValueError("the fused expansion does not differentiate w.r.t. w; pass w.detach()")
        return reference.spherical_expansion(z.to(dtype), w.to(dtype), n_expansion, noise.to(dtype))
    kd = _kernel_dtype(dtype)
    out = ops.expansion(z.to(kd).contiguous(), w.to(kd).contiguous(), noise.to(kd).contiguous())
    return out.to(dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t, implementation: str = "auto") -> torch.Tensor:
    """Geodesic interpolation on the unit sphere: (..., D) inputs, t broadcastable to (...).

    Inputs are normalised first. Stable as the angle goes to 0; at the antipode the
    great circle through `orthogonal_unit(a)` is taken. Differentiable in a, b and t.
    """
    for name, v in (("a", a), ("b", b)):
        if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
        if v.dim() < 1 or v.shape[-1] < 2:
            raise ValueError(f"{name} must have shape (..., D) with D >= 2, got {tuple(v.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    validation.check_same_device({"a": a, "b": b, "t": t})
    dtype = torch.promote_types(a.dtype, b.dtype)
    t = torch.as_tensor(t, dtype=dtype, device=a.device)
    try:
        t_rows = torch.broadcast_to(t, a.shape[:-1])
    except RuntimeError:
        raise ValueError(f"t must broadcast to {tuple(a.shape[:-1])}, got shape {tuple(t.shape)}") from None
    if not _use_fused(implementation, a.device):
        return reference.slerp(a.to(dtype), b.to(dtype), t_rows)
    kd = _kernel_dtype(dtype)
    D = a.shape[-1]
    out = ops.slerp_rows(
        a.to(kd).reshape(-1, D).contiguous(), b.to(kd).reshape(-1, D).contiguous(), t_rows.to(kd).reshape(-1).contiguous()
    )
    return out.reshape(a.shape).to(dtype)


def proxy_anchor_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    alpha: float = 32.0,
    margin: float = 0.1,
    implementation: str = "auto",
) -> torch.Tensor:
    """Proxy-Anchor loss (Kim et al., 2020) of B x D embeddings, labels in [0, C), C x D proxies."""
    dtype = validation.check_loss_inputs(embeddings, labels, proxies)
    validation.check_loss_options(alpha, margin)
    if not _use_fused(implementation, embeddings.device):
        return reference.proxy_anchor_loss(embeddings, labels, proxies, alpha, margin)
    return _fused_pa(embeddings, labels, proxies, None, None, alpha, margin, 0.0, dtype)


def proxy_anchor_loss_with_synthetic(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    synthetic: torch.Tensor,
    synthetic_labels: torch.Tensor,
    lam: float = 0.2,
    alpha: float = 32.0,
    margin: float = 0.1,
    implementation: str = "auto",
) -> torch.Tensor:
    """PA(embeddings) + lam·PA(synthetic): Proxy-Anchor with extra (e.g. synthetic) rows.

    synthetic: M x D points with synthetic_labels (M,) in [0, C); M may be 0.
    The fused kernel forms both similarity blocks with one matrix product and
    never stores dL/dS. Gradients reach embeddings, proxies and synthetic.
    """
    dtype = validation.check_loss_inputs(embeddings, labels, proxies)
    validation.check_loss_options(alpha, margin)
    validation.check_real(lam, "lam", low=0.0)
    validation.check_float_matrix(synthetic, "synthetic", f"(M, {embeddings.shape[1]})")
    if synthetic.shape[1] != embeddings.shape[1]:
        raise ValueError(f"synthetic must have shape (M, {embeddings.shape[1]}), got {tuple(synthetic.shape)}")
    if synthetic.dtype != embeddings.dtype:
        raise TypeError(f"synthetic must have the dtype of embeddings ({embeddings.dtype}), got {synthetic.dtype}")
    validation.check_labels(synthetic_labels, synthetic.shape[0], proxies.shape[0], name="synthetic_labels")
    validation.check_same_device({"embeddings": embeddings, "synthetic": synthetic, "synthetic_labels": synthetic_labels})
    if not _use_fused(implementation, embeddings.device):
        return reference.proxy_anchor_loss_with_synthetic(
            embeddings, labels, proxies, synthetic, synthetic_labels, lam, alpha, margin
        )
    return _fused_pa(embeddings, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, dtype,
                     synthetic_grad=True)


def _fused_pa(x, y, proxies, synthetic, synthetic_labels, alpha, margin, lam, dtype, synthetic_grad=False):
    kd = _kernel_dtype(dtype)
    D = x.shape[1]
    if synthetic is None:
        synthetic = x.new_empty(0, D, dtype=kd)
        synthetic_labels = y.new_empty(0, dtype=torch.int64)
    loss = ops.proxy_anchor_fused(
        x.to(kd).contiguous(), y.to(torch.int64).contiguous(), proxies.to(kd).contiguous(),
        synthetic.to(kd).contiguous(), synthetic_labels.to(torch.int64).contiguous(),
        float(alpha), float(margin), float(lam), synthetic_grad,
    )
    return loss.to(dtype)


def fused_see_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    n_expansion: int = 16,
    lam: float = 0.2,
    mode: str = "fraction",
    ratio: float = 0.4,
    threshold: float = 0.0,
    alpha: float = 32.0,
    margin: float = 0.1,
    detach_synthetic: bool = True,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    return_stats: bool = False,
    implementation: str = "auto",
):
    """SEE loss: Proxy-Anchor on the batch plus lam x Proxy-Anchor on synthetic points.

    Args:
        embeddings: B x D network outputs (normalised inside).
        labels: B integer labels in [0, C).
        proxies: C x D class proxies (a learnable parameter).
        n_expansion: synthetic points per expanded sample (n); needs D >= n + 1.
        lam: weight λ of the synthetic term.
        mode: "fraction" expands the round(B·ratio) samples closest to their proxy;
            "threshold" expands those with cosine >= threshold.
        alpha, margin: Proxy-Anchor's scale α and margin δ.
        detach_synthetic: as the original, the synthetic term trains only the
            proxies; False lets its gradient reach the embeddings too.
        generator: source of the random frames; `noise` (B x (n-1) x D) fixes them.
        return_stats: also return a `SEEStats`.
    Returns:
        The 0-d loss (in the promoted dtype of embeddings and proxies), or
        (loss, SEEStats).
    """
    dtype = validation.check_loss_inputs(embeddings, labels, proxies, read_values=False)
    validation.check_loss_options(alpha, margin)
    B, D = embeddings.shape
    validation.check_see_options(n_expansion, lam, mode, ratio, threshold, D)
    validation.check_noise(noise, B, n_expansion, D)
    validation.check_same_device({"embeddings": embeddings, "noise": noise})
    validation.check_generator(generator, embeddings.device)
    options = dict(
        n_expansion=n_expansion, lam=lam, mode=mode, ratio=ratio, threshold=threshold, alpha=alpha, margin=margin,
        detach_synthetic=detach_synthetic, generator=generator, noise=noise, return_stats=return_stats,
    )
    fused = _use_fused(implementation, embeddings.device)
    one_call = fused and detach_synthetic and has_kernel(embeddings.device.type, _WHOLE_LOSS_OP)
    if not one_call:
        validation.check_loss_values(embeddings, labels, proxies)  # the one-call kernel checks them itself
    if not fused:
        return reference.see_loss(embeddings, labels, proxies, **options)
    if not one_call:
        return _see_composed(embeddings, labels, proxies, dtype, **options)
    loss, k, mean_cosine = _see_in_one_call(embeddings, labels, proxies, dtype, n_expansion, lam, mode, ratio,
                                            threshold, alpha, margin, generator, noise)
    if not return_stats:
        return loss
    return loss, SEEStats(num_expanded=int(k), num_synthetic=int(k) * n_expansion, mean_positive_cosine=mean_cosine)


def _see_in_one_call(x, y, proxies, dtype, n, lam, mode, ratio, threshold, alpha, margin, generator, noise):
    """(loss, k, mean positive cosine) by the whole-loss kernel (detached synthetic points)."""
    kd = _kernel_dtype(dtype)
    num_selected = num_selected_by_fraction(x.shape[0], ratio) if mode == "fraction" else -1
    seed = draw_seed(generator, x.device) if noise is None else _NO_SEED
    loss, k, mean_cosine = ops.see_loss_fused(
        x.to(kd).contiguous(), y.to(torch.int64).contiguous(), proxies.to(kd).contiguous(),
        None if noise is None else noise.to(kd).contiguous(), seed, n, num_selected, float(threshold),
        float(lam), float(alpha), float(margin),
    )
    return loss.to(dtype), k, mean_cosine


def _see_composed(x, y, proxies, dtype, n_expansion, lam, mode, ratio, threshold, alpha, margin,
                  detach_synthetic, generator, noise, return_stats):
    """The SEE loss from the expansion and Proxy-Anchor ops, as the reference composes it."""
    kd = _kernel_dtype(dtype)
    n = n_expansion
    s = reference.positive_cosines(x, y, proxies)
    selected = select_for_expansion(s, mode, ratio, threshold)
    k = selected.numel()
    source = x[selected].to(kd)
    if detach_synthetic:
        source = source.detach()
    if noise is None:
        noise_k = reference.expansion_noise(k, n, x.shape[1], kd, x.device, generator)
    else:
        noise_k = noise[selected]
    proxies_k = proxies[y[selected]].detach().to(kd)
    synthetic = ops.expansion(source.contiguous(), proxies_k.contiguous(), noise_k.to(kd).contiguous())
    synthetic_labels = y[selected].repeat_interleave(n)
    loss = _fused_pa(
        x, y, proxies, synthetic.reshape(k * n, x.shape[1]), synthetic_labels, alpha, margin, lam, dtype,
        synthetic_grad=not detach_synthetic,
    )
    if not return_stats:
        return loss
    return loss, SEEStats(num_expanded=k, num_synthetic=k * n, mean_positive_cosine=s.mean())
