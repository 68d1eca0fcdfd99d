"""The public functions: validate once, then run what see_cuda/dispatch.py chose.

Each function uses the compiled kernels when this install has them for the
input's device, and the reference path (same results, slower) otherwise;
`implementation="reference"` or `"fused"` forces one.

Value checks (label range, finiteness, usable draws) follow one policy
(see_cuda/validation.py): CPU tensors are always checked; the losses on CUDA
tensors check on the device unless `check_values=False` and read the result
later (see_cuda/deferred_checks.py: a failed call's loss is NaN, and its
error is raised by a later call), the other functions read
them with one host synchronisation; with `check_values=False` an out-of-range
label makes the loss NaN instead of an error; the reference always checks;
meta tensors hold no values and are not checked.
Labels may have any integer dtype.
"""
from __future__ import annotations

import torch

from . import deferred_checks, dispatch, selection, validation
from .options import DEFAULTS, PROXY_ANCHOR, ProxyAnchorSettings, SEEOptions, resolve_options


def mmd_centers(num_centers: int, dim: int, radius: float = 1.0, device=None,
                implementation: str = "auto") -> torch.Tensor:
    """Max-Mahalanobis centers: num_centers x dim float64, pairwise inner product -radius²/(num_centers-1).

    Needs dim >= num_centers - 1. Row 0 is radius·e_1; row i is zero beyond column i (docs/method.md §3.3).
    """
    validation.check_mmd_centers_args(num_centers, dim, radius)
    device = torch.device(device if device is not None else "cpu")
    return dispatch.mmd_centers_plan(implementation, device).run(num_centers, dim, radius, device)


def spherical_expansion(
    z: torch.Tensor,
    w: torch.Tensor,
    n_expansion: int,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    implementation: str = "auto",
    check_values: bool = True,
) -> torch.Tensor:
    """SEE expansion of k samples z (k x D) about their class proxies w (k x D).

    Returns k x n x D unit vectors with each source's cosine to its proxy, at
    the other n vertices of a regular simplex about the proxy axis
    (docs/method.md §3). The random frame comes from `noise` (k x (n-1) x D)
    or from `generator`. Gradients reach z; the fused kernel treats w as a
    constant, so when w needs a gradient the reference path runs instead.
    check_values: on CUDA tensors, whether finiteness and usable draws are
    checked (one host synchronisation); CPU tensors are always checked.
    """
    dtype = validation.check_expansion_inputs(z, w, n_expansion, noise, generator)
    w_needs_grad = torch.is_grad_enabled() and w.requires_grad
    plan = dispatch.expansion_plan(implementation, z.device, w_needs_grad)
    validation.check_call_values(z.device, check_values, plan.is_reference, dtype, rows={"z": z, "w": w},
                                 noise={} if noise is None else {"noise": noise})
    return plan.run(z, w, n_expansion, noise, generator, dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t, implementation: str = "auto",
          check_values: bool = True) -> torch.Tensor:
    """Geodesic interpolation on the unit sphere: (..., D) inputs, t broadcastable to (...) (docs/method.md §6).

    Inputs are normalised first. Stable as the angle goes to 0; at the antipode the
    great circle through `orthogonal_unit(a)` is taken. Differentiable in a, b and t.
    check_values: on CUDA tensors, whether a, b and t are checked to be finite
    (one host synchronisation); CPU tensors are always checked.
    """
    dtype, t_rows = validation.check_slerp_inputs(a, b, t)
    plan = dispatch.slerp_plan(implementation, a.device)
    validation.check_call_values(a.device, check_values, plan.is_reference, dtype, rows={"a": a, "b": b},
                                 finite={"t": t_rows})
    return plan.run(a, b, t_rows, dtype)


def proxy_anchor_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    alpha: float = PROXY_ANCHOR.alpha,
    margin: float = PROXY_ANCHOR.margin,
    implementation: str = "auto",
    check_values: bool = True,
    chunk_bytes: int | None = None,
) -> torch.Tensor:
    """Proxy-Anchor loss (Kim et al., 2020; docs/method.md §1) of B x D embeddings, labels in [0, C), C x D proxies.

    check_values: on CUDA tensors, whether label range and finiteness are
    checked, on the device without waiting: a failed check makes the loss NaN
    and raises its ValueError at the next see_cuda call that finds the check
    done (see_cuda.wait_for_value_checks() waits). False
    skips that, and an out-of-range label then makes the loss NaN. CPU tensors
    are always checked at once.
    alpha: up to validation.max_alpha(dtype, margin) (7.7e37 in float32 and
    bfloat16, 4e307 in float64, 1.5e4 in float16 with margin 0.1); larger is a
    ValueError.
    chunk_bytes: how the fused kernels work, not what they compute: they form
    the B x C cosines for chunks of classes of at most this many bytes (at least
    one class per chunk), so that memory stays O(B x chunk) for any C; None
    takes the default, 256 MiB. The reference ignores it.
    """
    dtype = validation.check_loss_inputs(embeddings, labels, proxies)
    settings = ProxyAnchorSettings(alpha, margin)
    settings.check_dtype(dtype)
    validation.check_chunk_bytes(chunk_bytes)
    labels = validation.index_labels(labels)
    plan = dispatch.plan(implementation, embeddings.device, settings, None, chunk_bytes)
    pending = validation.check_call_values(embeddings.device, check_values, plan.is_reference, dtype, deferrable=True,
                                           rows={"embeddings": embeddings, "proxies": proxies},
                                           labels={"labels": (labels, proxies.shape[0])})
    return with_checks(plan.primitives.loss(embeddings, labels, proxies, None, None, settings, 0.0, False), pending)


def proxy_anchor_loss_with_synthetic(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    synthetic: torch.Tensor,
    synthetic_labels: torch.Tensor,
    lam: float = DEFAULTS.lam,
    alpha: float = PROXY_ANCHOR.alpha,
    margin: float = PROXY_ANCHOR.margin,
    implementation: str = "auto",
    check_values: bool = True,
    chunk_bytes: int | None = None,
) -> torch.Tensor:
    """PA(embeddings) + lam·PA(synthetic): Proxy-Anchor with extra (e.g. synthetic) rows (docs/method.md §4).

    synthetic: M x D points with synthetic_labels (M,) in [0, C); M may be 0.
    The fused kernel forms both similarity blocks with one matrix product per
    chunk of classes and never stores dL/dS beyond a chunk. Gradients reach
    embeddings, proxies and synthetic.
    check_values, alpha, chunk_bytes: as in proxy_anchor_loss.
    """
    dtype = validation.check_loss_inputs(embeddings, labels, proxies)
    settings = ProxyAnchorSettings(alpha, margin)
    settings.check_dtype(dtype)
    validation.check_synthetic_inputs(embeddings, synthetic, synthetic_labels, lam)
    validation.check_chunk_bytes(chunk_bytes)
    labels, synthetic_labels = validation.index_labels(labels), validation.index_labels(synthetic_labels)
    plan = dispatch.plan(implementation, embeddings.device, settings, None, chunk_bytes)
    C = proxies.shape[0]
    pending = validation.check_call_values(
        embeddings.device, check_values, plan.is_reference, dtype, deferrable=True,
        rows={"embeddings": embeddings, "proxies": proxies, "synthetic": synthetic},
        labels={"labels": (labels, C), "synthetic_labels": (synthetic_labels, C)})
    return with_checks(plan.primitives.loss(embeddings, labels, proxies, synthetic, synthetic_labels, settings, lam,
                                            True), pending)


def fused_see_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    n_expansion: int = DEFAULTS.n_expansion,
    lam: float = DEFAULTS.lam,
    mode: str = DEFAULTS.mode,
    ratio: float = DEFAULTS.ratio,
    threshold: float = DEFAULTS.threshold,
    alpha: float = DEFAULTS.alpha,
    margin: float = DEFAULTS.margin,
    detach_synthetic: bool = DEFAULTS.detach_synthetic,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    return_stats: bool = False,
    implementation: str = "auto",
    options: SEEOptions | None = None,
    check_values: bool = True,
    chunk_bytes: int | None = None,
    products: str = "float32",
):
    """SEE loss: Proxy-Anchor on the batch plus lam x Proxy-Anchor on synthetic points (docs/method.md §4).

    "fused" names the library's kernels: where this install has none for the
    tensors' device, implementation="auto" runs the reference instead (the
    same function, slower), and "fused" is an error (see see_cuda.dispatch).

    Args:
        embeddings: B x D network outputs (normalised inside).
        labels: B integer labels in [0, C).
        proxies: C x D class proxies (a learnable parameter).
        n_expansion, lam, mode, ratio, threshold, alpha, margin, detach_synthetic:
            the settings, as in SEEOptions; or give them as one `options=`.
        generator: source of the random frames; `noise` (B x (n-1) x D) fixes them.
        return_stats: also return a `SEEStats`.
        implementation: "auto", "fused" or "reference".
        check_values: on CUDA tensors, whether label range and finiteness
            (and given noise) are checked, on the device without waiting: a
            failed check makes the loss and its gradients NaN and raises its
            ValueError at the next see_cuda call that finds the check done
            (see_cuda.wait_for_value_checks() waits). False skips that, and an
            out-of-range label then makes the loss NaN. CPU tensors are always
            checked at once.
        chunk_bytes: the memory budget of the fused loss's chunks of classes,
            as in proxy_anchor_loss (None: the default, 256 MiB).
        products: the float32 products the one-call CUDA op may use:
            "float32" (float32's accuracy, split tf32 on tensor cores; the
            default), "tf32" (operands rounded to tf32's 11 significant
            bits: a third of the tensor-core products, each cosine within
            about 2^-10) or "bf16" (operands rounded to 8 significant bits,
            bf16 tensor cores: each cosine within about 2^-7); README
            "Products". The CPU kernels, float64 and the other paths form
            float32 products either way.
    alpha is bounded as in proxy_anchor_loss. Under torch.compile a
    `generator` other than the default one cannot be traced (a graph
    break; an error that says so under fullgraph=True): pass `noise` there.
    Returns:
        The 0-d loss (in the promoted dtype of embeddings and proxies), or
        (loss, SEEStats).
    """
    options = resolve_options(
        options, n_expansion=n_expansion, lam=lam, mode=mode, ratio=ratio, threshold=threshold, alpha=alpha,
        margin=margin, detach_synthetic=detach_synthetic,
    )
    loss, stats = see_loss_with_options(embeddings, labels, proxies, options, generator, noise, implementation,
                                        check_values, chunk_bytes, products)
    return (loss, stats) if return_stats else loss


def see_loss_with_options(embeddings, labels, proxies, options: SEEOptions, generator=None, noise=None,
                          implementation: str = "auto", check_values: bool = True, chunk_bytes: int | None = None,
                          products: str = "float32"):
    """(loss, SEEStats) of fused_see_loss for settings already built as a SEEOptions."""
    return see_loss(embeddings, labels, proxies, options.expansion, options.loss, generator, noise, implementation,
                    check_values, chunk_bytes, products)


def see_loss(embeddings, labels, proxies, expansion, settings, generator=None, noise=None,
             implementation: str = "auto", check_values: bool = True, chunk_bytes: int | None = None,
             products: str = "float32"):
    """(loss, SEEStats) of the base loss whose settings are `settings` (ProxyAnchorSettings, or a softmax-family
    loss's) with the SphericalExpansion `expansion` (mode "none": the base loss alone); the other arguments are
    fused_see_loss's. Checked once, then run by dispatch's plan."""
    dtype = validation.check_see_call(embeddings, labels, proxies, expansion, settings, noise, generator, chunk_bytes,
                                      products=products)
    labels = validation.index_labels(labels)
    device = embeddings.device
    plan = dispatch.plan(implementation, device, settings, expansion, chunk_bytes, products)
    # The kernels' flags are read where the checks are deferred (never by the reference, which reads at once).
    flags_read = bool(plan.kernel_flags) and validation.values_are_deferred(device, check_values)
    rows, labels_group = {"embeddings": embeddings, "proxies": proxies}, {"labels": (labels, proxies.shape[0])}
    values = plan.unchecked_values(dtype, flags_read, rows=rows, labels=labels_group,
                                   noise={} if noise is None else {"noise": noise})
    pending = validation.check_call_values(device, check_values, plan.is_reference, dtype, deferrable=True, **values)
    loss, stats, value_flags = plan.run(embeddings, labels, proxies, expansion, settings, generator, noise)
    if flags_read:  # the groups checked here instead (rows in half precision) are not the flags' to name
        deferred_checks.queue(validation.flagged_values_check(
            value_flags, rows if "rows" not in values else {}, labels_group if "labels" not in values else {}, dtype))
    return with_checks(loss, pending), stats


def with_checks(loss: torch.Tensor, pending) -> torch.Tensor:
    """The loss as returned: on CUDA with check_values, NaN if its queued checks fail (deferred_checks)."""
    return loss if pending is None else deferred_checks.checked(loss, pending)


# ---------------------------------------------------------------- selection and schedules (docs/method.md §2)
def select_for_expansion(scores: torch.Tensor, mode: str, ratio: float, threshold: float,
                         check_values: bool = True) -> torch.Tensor:
    """Indices of the samples to expand, given their detached positive cosines (1-D, floating point).

    fraction: the round(B·ratio) largest scores, largest first; equal scores
        in batch order. threshold: every sample whose score is >= threshold,
        in batch order. none: no sample.
    check_values: on CUDA, whether the scores are checked to be finite (one
    host synchronisation); CPU scores are always checked.
    """
    validation.check_selection_args(scores, mode, ratio, threshold)
    validation.check_mode_for_device(mode, scores.device)
    validation.check_call_values(scores.device, check_values, finite={"scores": scores})
    return selection.select_for_expansion(scores, mode, ratio, threshold)


def fraction_schedule(epoch: float, num_epochs: float, rho_min: float = 0.04, rho_max: float = 0.4) -> float:
    """ρ(e): the fraction of the batch to expand, rising from ρ_min at epoch 0 to ρ_max at the last."""
    validation.check_schedule_epochs(epoch, num_epochs)
    validation.check_real(rho_min, "rho_min", low=0.0, high=1.0)
    validation.check_real(rho_max, "rho_max", low=0.0, high=1.0)
    return selection.fraction_schedule(epoch, num_epochs, rho_min, rho_max)


def threshold_schedule(epoch: float, num_epochs: float, tau_min: float, tau_max: float,
                       lower_bound: float = 0.0) -> float:
    """τ(e): the cosine a sample needs to be expanded, falling from τ_max to τ_min, not below lower_bound."""
    validation.check_schedule_epochs(epoch, num_epochs)
    for value, name in ((tau_min, "tau_min"), (tau_max, "tau_max"), (lower_bound, "lower_bound")):
        validation.check_real(value, name)
    return selection.threshold_schedule(epoch, num_epochs, tau_min, tau_max, lower_bound)
