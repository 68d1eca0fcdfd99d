"""The compiled operators as the steps of the SEE loss: this module mirrors see_cuda.reference.

Each adapter casts to the kernels' dtype (float32 or float64), makes its
inputs contiguous, and returns the result in the caller's dtype. Which of
these or of the reference's runs for a call is decided in see_cuda.dispatch,
never here.
"""
from __future__ import annotations

import torch

from . import noise, ops, reference, validation
from .composition import SEEPrimitives
from .gather import rows_or_nan
from .noise import draw_seed
from .selection import num_selected_by_fraction
from .stats import SEEStats

# The kernels run in float32 or float64, half precision widened to float32: the precision of the draws.
kernel_dtype = reference.draw_dtype


def _kernel_input(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype).contiguous()


# ---------------------------------------------------------------- the steps of the SEE loss
def draws(seed: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
    """reference.draws_of_seed by the compiled stream, left in the draw dtype (the expansion op casts).

    The op computes see_cuda.noise's formula (float32 within 1 ulp, all but
    ~4 in 10^7 elements bit-identical; float64 within a few ulp) about 20x
    faster than the PyTorch statement.
    """
    return ops.philox_normal(seed, shape, kernel_dtype(dtype))


def pytorch_draws(seed: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
    """The draws of `draws` by the PyTorch statement, for a device without the stream's kernel."""
    return noise.philox_normal(seed, shape, kernel_dtype(dtype))


def kernel_noise(k: int, n: int, dim: int, dtype: torch.dtype, device, generator=None) -> torch.Tensor:
    """reference.expansion_noise's draws (k x (n-1) x dim, one draw of `generator`) by the compiled stream."""
    return draws(draw_seed(generator, device), (k, n - 1, dim), dtype)


def expand(z: torch.Tensor, w: torch.Tensor, n: int, draws: torch.Tensor) -> torch.Tensor:
    """The expansion op in the kernels' dtype (w is a constant to it: see ops.spherical_expansion)."""
    kd = kernel_dtype(torch.promote_types(z.dtype, w.dtype))
    return ops.spherical_expansion(_kernel_input(z, kd), _kernel_input(w, kd), _kernel_input(draws, kd))


def proxy_anchor(x, y, proxies, synthetic, synthetic_labels, settings, lam, synthetic_grad=False, *,
                 class_offset: int = 0, total_classes: int | None = None, chunk_bytes: int | None = None):
    """The Proxy-Anchor op as the scoring primitive, with or without synthetic rows, in the dtype of x and proxies.

    class_offset and total_classes: the share of the classes these proxies are
    (see ops.proxy_anchor_fused; defaults: all of them), checked as
    reference.proxy_anchor_share checks them. chunk_bytes: the memory budget
    of its chunks of similarities (None: the library's default).
    """
    if total_classes is not None:
        validation.check_class_shard(proxies.shape[0], class_offset, total_classes)
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    kd = kernel_dtype(dtype)
    if synthetic is None:
        synthetic = x.new_empty(0, x.shape[1], dtype=kd)
        synthetic_labels = y.new_empty(0, dtype=torch.int64)
        lam = 0.0
    loss = ops.proxy_anchor_fused(
        _kernel_input(x, kd), _kernel_input(y, torch.int64), _kernel_input(proxies, kd),
        _kernel_input(synthetic, kd), _kernel_input(synthetic_labels, torch.int64), settings.alpha, settings.margin,
        lam, synthetic_grad, class_offset=class_offset, total_classes=total_classes, chunk_bytes=chunk_bytes,
    )
    return loss.to(dtype)


# The steps of the SEE loss with Proxy-Anchor by the compiled operators, as reference.PRIMITIVES.
PRIMITIVES = SEEPrimitives(
    class_proxies=rows_or_nan, positive_cosines=reference.row_cosines, draw_seed=draw_seed, draws=draws,
    expand=expand, loss=proxy_anchor,
)


# ---------------------------------------------------------------- the whole loss in one call
def see_loss_in_one_call(x, y, proxies, expansion, settings, generator=None, noise=None, chunk_bytes=None,
                         products="float32"):
    """(loss, SEEStats, value flags) by ops.see_loss_fused (see it for what its kernels check and flag).

    The synthetic points are detached (expansion.detach_synthetic). In the
    threshold mode the number expanded is known only on the device: on CUDA
    SEEStats holds it as a 0-d tensor there (reading it is a synchronisation).
    """
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    kd = kernel_dtype(dtype)
    n = expansion.n_expansion
    num_selected = num_selected_by_fraction(x.shape[0], expansion.ratio) if expansion.mode == "fraction" else None
    # Given noise makes the seed unused: a zero seed on the device, not a draw of the generator.
    seed = draw_seed(generator, x.device) if noise is None else torch.zeros((), dtype=torch.int64, device=x.device)
    loss, k, mean_cosine, flags = ops.see_loss_fused(
        _kernel_input(x, kd), _kernel_input(y, torch.int64), _kernel_input(proxies, kd),
        None if noise is None else _kernel_input(noise, kd), seed, n, num_selected, expansion.threshold,
        expansion.lam, settings.alpha, settings.margin, chunk_bytes, products,
    )
    if num_selected is not None:
        k = num_selected
    elif not k.is_cuda:
        k = int(k)  # on the CPU the op has finished: no wait
    stats = SEEStats(num_expanded=k, num_synthetic=k * n, mean_positive_cosine=mean_cosine)
    return loss.to(dtype), stats, flags


# ---------------------------------------------------------------- the other operators
def slerp(a: torch.Tensor, b: torch.Tensor, t_rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The slerp op on the rows of (..., D) inputs, t_rows broadcast to a.shape[:-1], returned in `dtype`."""
    kd = kernel_dtype(dtype)
    D = a.shape[-1]
    out = ops.slerp(a.to(kd).reshape(-1, D).contiguous(), b.to(kd).reshape(-1, D).contiguous(),
                    t_rows.to(kd).reshape(-1).contiguous())
    return out.reshape(a.shape).to(dtype)


def mmd_centers(num_centers: int, dim: int, radius: float, device) -> torch.Tensor:
    """The closed-form op's centers (reference.mmd_centers' recursion is the statement), on `device`."""
    return ops.mmd_centers(num_centers, dim, radius, device)
