"""Which implementation runs a call, decided here and nowhere else.

`implementation="auto"` runs the compiled kernels where this install has them
for the tensors' device and the reference otherwise; "fused" insists on the
kernels (a clear error without them); "reference" runs see_cuda.reference. For
the SEE loss the choice is a set of primitives for the one composition
(see_cuda.composition): the reference's, or the operators' below, which cast to
the kernels' dtype, index by labels safely and draw the noise with the
compiled stream. Where the whole loss has a kernel of its own (the CPU, with
detached synthetic points) it runs in one call.
"""
from __future__ import annotations

import functools

import torch

from . import noise, ops, reference, validation
from ._extension import PROBE_OP, has_kernel, missing_kernels_message
from .composition import SEEPrimitives
from .gather import rows_or_nan
from .selection import num_selected_by_fraction
from .share import reference_share
from .stats import SEEStats

WHOLE_LOSS_OP = "see_cuda::see_loss_fused"
NOISE_OP = "see_cuda::philox_normal_"
MMD_CENTERS_OP = "see_cuda::mmd_centers_"


def use_fused(implementation: str, device: torch.device, op: str = PROBE_OP) -> bool:
    """Whether the compiled kernels run for `implementation` on `device`; "fused" without them is an error."""
    validation.check_implementation(implementation)
    available = has_kernel(device.type, op)
    if implementation == "fused" and not available:
        raise RuntimeError(f"implementation='fused': {missing_kernels_message(device.type, op)}")
    return implementation == "fused" or (implementation == "auto" and available)


def kernel_dtype(dtype: torch.dtype) -> torch.dtype:
    """The kernels run in float32 or float64; half precision is widened to float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _kernel_input(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype).contiguous()


# ---------------------------------------------------------------- the operators as SEE primitives
def kernel_noise(k: int, n: int, dim: int, dtype: torch.dtype, device, generator=None) -> torch.Tensor:
    """reference.expansion_noise's draws, by the compiled stream, in the draw dtype (float32 or float64).

    The op computes see_cuda.noise's formula (float32 within 1 ulp, all but
    ~4 in 10^7 elements bit-identical; float64 within a few ulp) about 20x
    faster than the PyTorch statement.
    """
    return draws_of_seed(noise.draw_seed(generator, device), (k, n - 1, dim), reference.draw_dtype(dtype))


def draws_of_seed(seed: torch.Tensor, shape, draw_dtype: torch.dtype) -> torch.Tensor:
    """Elements 0 .. numel-1 of the normal stream `seed`, by the compiled stream where this install has it."""
    if has_kernel(seed.device.type, NOISE_OP):
        return ops.philox_normal(seed, shape, draw_dtype)
    return noise.philox_normal(seed, shape, draw_dtype)


def fused_expansion(z: torch.Tensor, w: torch.Tensor, n: int, draws: torch.Tensor) -> torch.Tensor:
    """The expansion op in the kernels' dtype (w is a constant to it: see spherical_expansion)."""
    kd = kernel_dtype(torch.promote_types(z.dtype, w.dtype))
    return ops.spherical_expansion(_kernel_input(z, kd), _kernel_input(w, kd), _kernel_input(draws, kd))


def fused_proxy_anchor(x, y, proxies, synthetic, synthetic_labels, lam, alpha, margin, synthetic_grad=False, *,
                       class_offset: int = 0, total_classes: int | None = None, chunk_bytes: int | None = None):
    """The Proxy-Anchor op, with or without synthetic rows, in the dtype of x and proxies.

    class_offset and total_classes: the share of the classes these proxies are
    (see ops.proxy_anchor_fused; defaults: all of them). chunk_bytes: the memory
    budget of its chunks of similarities (None: the library's default).
    """
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    kd = kernel_dtype(dtype)
    if synthetic is None:
        synthetic = x.new_empty(0, x.shape[1], dtype=kd)
        synthetic_labels = y.new_empty(0, dtype=torch.int64)
        lam = 0.0
    loss = ops.proxy_anchor_fused(
        _kernel_input(x, kd), _kernel_input(y, torch.int64), _kernel_input(proxies, kd),
        _kernel_input(synthetic, kd), _kernel_input(synthetic_labels, torch.int64), alpha, margin, lam,
        synthetic_grad, class_offset=class_offset, total_classes=total_classes, chunk_bytes=chunk_bytes,
    )
    return loss.to(dtype)


FUSED_PRIMITIVES = SEEPrimitives(
    class_proxies=rows_or_nan, positive_cosines=reference.row_cosines, draw_noise=kernel_noise,
    expand=fused_expansion, proxy_anchor=fused_proxy_anchor,
)


def see_primitives(implementation: str, device: torch.device, chunk_bytes: int | None = None) -> SEEPrimitives:
    """The primitives of the SEE loss for `implementation` on `device`.

    chunk_bytes: the memory budget of the fused Proxy-Anchor loss's chunks of similarities (None: the default).
    """
    if not use_fused(implementation, device):
        return reference.PRIMITIVES
    return FUSED_PRIMITIVES if chunk_bytes is None else _fused_primitives_with_budget(chunk_bytes)


@functools.lru_cache(maxsize=8)
def _fused_primitives_with_budget(chunk_bytes: int) -> SEEPrimitives:
    return FUSED_PRIMITIVES._replace(proxy_anchor=functools.partial(fused_proxy_anchor, chunk_bytes=chunk_bytes))


def expansion_primitives(implementation: str, device: torch.device, w_needs_grad: bool) -> SEEPrimitives:
    """As see_primitives, but the expansion op treats w as a constant: a w that needs a gradient takes the reference."""
    primitives = see_primitives(implementation, device)
    if w_needs_grad and primitives is FUSED_PRIMITIVES:
        if implementation == "fused":
            raise ValueError("the fused expansion does not differentiate w.r.t. w; pass w.detach()")
        return reference.PRIMITIVES
    return primitives


# ---------------------------------------------------------------- a process's share of the classes
def share_primitive(implementation: str, device: torch.device):
    """What computes a process's share of PA(x) + λ·PA(synthetic) (see_cuda.sharded).

    The compiled op where a kernel serves (it takes a range of the classes),
    otherwise the reference in chunks of classes.
    """
    return fused_proxy_anchor if use_fused(implementation, device) else reference_share


# ---------------------------------------------------------------- the whole loss in one call
def runs_in_one_call(primitives: SEEPrimitives, device: torch.device, options) -> bool:
    """Whether the one-call kernel computes this SEE loss (detached synthetic points, a kernel for the device)."""
    return (primitives is not reference.PRIMITIVES and options.expands and options.detach_synthetic
            and has_kernel(device.type, WHOLE_LOSS_OP))


def see_loss_in_one_call(x, y, proxies, options, generator=None, draws=None, chunk_bytes=None):
    """(loss, SEEStats) by ops.see_loss_fused, which checks label range, finiteness and rows that overflow itself."""
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    kd = kernel_dtype(dtype)
    n = options.n_expansion
    num_selected = num_selected_by_fraction(x.shape[0], options.ratio) if options.mode == "fraction" else -1
    # Given draws make the seed unused: a zero seed on the device, not a draw of the generator.
    seed = noise.draw_seed(generator, x.device) if draws is None else torch.zeros((), dtype=torch.int64,
                                                                                   device=x.device)
    loss, k, mean_cosine = ops.see_loss_fused(
        _kernel_input(x, kd), _kernel_input(y, torch.int64), _kernel_input(proxies, kd),
        None if draws is None else _kernel_input(draws, kd), seed, n, num_selected, options.threshold,
        options.lam, options.alpha, options.margin, chunk_bytes,
    )
    # The fraction is known before the call; reading the threshold's count is a host synchronisation.
    k = num_selected if num_selected >= 0 else int(k)
    return loss.to(dtype), SEEStats(num_expanded=k, num_synthetic=k * n, mean_positive_cosine=mean_cosine)
