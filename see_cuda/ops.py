"""The compiled kernels as PyTorch operators: typed wrappers, fake kernels, autograd.

The C++/CUDA kernels are registered under `torch.ops.see_cuda` by the compiled
extension; this module adds what PyTorch needs around them: shape functions for
`torch.compile` (`register_fake`) and backward formulas (`register_autograd`).
The wrappers carry the names of the public functions they serve. Their inputs
are assumed valid (see_cuda/validation.py), contiguous, and of one dtype
(float32 or float64); which of them runs for a call is decided in
see_cuda/dispatch.py. Without the extension the wrappers exist but must not be called.
"""
from __future__ import annotations

import torch

from . import transforms
from ._extension import HAVE_EXTENSION


def _op(name: str):
    return getattr(torch.ops.see_cuda, name).default


# ---------------------------------------------------------------- wrappers
def mmd_centers(num_centers: int, dim: int, radius: float, device) -> torch.Tensor:
    """num_centers x dim float64 Max-Mahalanobis centers, by the closed form (docs/method.md §3.3)."""
    out = torch.empty(num_centers, dim, dtype=torch.float64, device=device)
    _op("mmd_centers_")(out, float(radius))
    return out


def philox_normal(seed: torch.Tensor, shape, dtype: torch.dtype, device=None) -> torch.Tensor:
    """Elements 0 .. numel-1 of the normal stream `seed` (docs/method.md §5), in row-major order.

    seed: 0-d int64 tensor on `device` (default: the seed's device); dtype:
    float32 or float64.
    """
    out = torch.empty(tuple(shape), dtype=dtype, device=seed.device if device is None else device)
    _op("philox_normal_")(out, seed)
    return out


def spherical_expansion(z: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """k x n x D synthetic points of k sources z about proxies w; noise is k x (n-1) x D (docs/method.md §3)."""
    transforms.refuse_fused_op("expansion")
    return _op("expansion")(z, w, noise)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Row-wise slerp of R x D inputs at R parameters t (docs/method.md §6)."""
    transforms.refuse_fused_op("slerp")
    return _op("slerp")(a, b, t)


def proxy_anchor_fused(x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, synthetic_grad=False,
                       class_offset=0, total_classes=None, chunk_bytes=None):
    """PA(x) + lam·PA(synthetic), one 0-d loss; gradients are formed in the forward pass.

    The kernel writes dL/dx, dL/dproxies (and dL/dsynthetic when asked) while
    the similarities are at hand, so the backward is a scaling by the incoming
    gradient and no N x C matrix outlives the call. Labels are global class
    indices; a label outside [0, total_classes) makes the loss and gradients
    NaN (the kernels are memory-safe for any label).

    Sharded classes: the proxies (C_local x D) are the classes [class_offset,
    class_offset + C_local) of total_classes (None: C_local, offset 0). The
    result is their share of the loss, the terms of those classes with the
    weights of all classes (1/total_classes, 1/|P+| with P+ the classes among
    the labels), so that the shares of a partition of the classes add up to
    the loss (reference.proxy_anchor_share); a row of another class is a
    negative of every local proxy. chunk_bytes bounds the memory of the
    similarities, formed for chunks of at most chunk_bytes / (N·itemsize)
    classes (at least one); None: the library's default, 256 MiB
    (kDefaultChunkBytes in csrc/proxy_anchor.h).
    """
    compute_grad = torch.is_grad_enabled() and (
        x.requires_grad or proxies.requires_grad or (synthetic_grad and synthetic.requires_grad)
    )
    transforms.refuse_fused_op("proxy_anchor_fused")
    outputs = _op("proxy_anchor_fused")(
        x, labels, proxies, synthetic, synthetic_labels, float(alpha), float(margin), float(lam), compute_grad,
        compute_grad and synthetic_grad and synthetic.requires_grad, class_offset, total_classes, chunk_bytes,
    )
    return outputs[0]


def see_loss_fused(x, labels, proxies, noise, seed, n_expansion, num_selected, threshold, lam, alpha, margin,
                   chunk_bytes=None, products="float32"):
    """(loss, number expanded, mean positive cosine, value flags) of the SEE loss with detached synthetic points.

    num_selected expands that many best-fitted rows; None expands those
    with cosine >= threshold. The draws come from `noise` (B x (n-1) x D)
    or, when it is None, from the Philox stream of `seed` (0-d int64). The
    CPU kernel checks label range, finiteness and rows whose squared norm
    overflows itself (ValueError) and returns 0 flags; the CUDA kernels flag
    them on the device instead (0-d int64: 1 a label out of range, 2 an
    embedding, 4 a proxy whose norm is not finite) and the loss and gradients
    are then NaN. chunk_bytes: as in proxy_anchor_fused. products: "float32",
    "tf32" or "bf16" (functional.fused_see_loss).

    This op is the one whose autograd is not registered here: its formula (on
    the CPU a scaling of the gradients the forward pass formed, as for
    proxy_anchor_fused; on CUDA see_loss_fused_backward, which forms them from
    the forward's saved state with the incoming gradient folded in) is
    registered in C++ (csrc/see_loss_autograd.cpp), so that a training step
    that makes this one call spends no Python time in its backward. Like the
    formulas below it refuses a second derivative (the message of
    no_second_derivative) and a backward after x or the proxies changed in place.
    """
    transforms.refuse_fused_op("see_loss_fused")
    compute_grad = torch.is_grad_enabled() and (x.requires_grad or proxies.requires_grad)
    loss, _, _, num_expanded, mean_cosine, value_flags, _, _ = _op("see_loss_fused")(
        x, labels, proxies, noise, seed, n_expansion, num_selected, float(threshold), float(lam), float(alpha),
        float(margin), compute_grad, chunk_bytes, products,
    )
    return loss, num_expanded, mean_cosine, value_flags


# ---------------------------------------------------------------- fake kernels and autograd
def _empty_gradient(like: torch.Tensor) -> torch.Tensor:
    return like.new_empty(0)


def no_second_derivative(op_name: str, grads, inputs):
    """The backward's gradients, made so that differentiating them again raises.

    The backward formulas below are first derivatives only. Under
    `create_graph=True` (grad mode on in the backward) each gradient instead
    hangs off a node whose own backward raises, and which is linked to
    `inputs` (the op's inputs and the incoming gradients): any second
    derivative that would pass through this op, by .backward() or by
    torch.autograd.grad, is an error rather than a silently missing term. A
    create_graph backward that does not differentiate again is unaffected.
    """
    if not torch.is_grad_enabled():
        return grads
    message = (f"see_cuda::{op_name} has no second derivative: double backward (create_graph=True and a "
               "gradient of a gradient, e.g. a gradient penalty) is not supported by the fused kernels; "
               "use implementation='reference'")
    linked = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    return tuple(None if g is None else _SecondDerivativeError.apply(message, g.detach(), *linked) for g in grads)


class _SecondDerivativeError(torch.autograd.Function):
    """Passes `grad` through; its backward raises `message`. Linked to `inputs` so that autograd reaches it.
    Its context is set apart from its forward (setup_context), as torch.func's transforms require."""

    @staticmethod
    def forward(message, grad, *inputs):
        return grad.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.message = inputs[0]

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(ctx.message)


def _mmd_centers_fake(out, radius):
    torch._check(out.dtype == torch.float64 and out.dim() == 2, lambda: "out must be a 2-D float64 tensor")


def _philox_normal_fake(out, seed):
    torch._check(out.dtype in (torch.float32, torch.float64), lambda: "out must be float32 or float64")
    torch._check(seed.dim() == 0 and seed.dtype == torch.int64, lambda: "seed must be a 0-d int64 tensor")


def _expansion_fake(z, w, noise):
    torch._check(z.shape == w.shape, lambda: "z and w must have one shape")
    torch._check(noise.shape[0] == z.shape[0] and noise.shape[2] == z.shape[1])
    return z.new_empty(z.shape[0], noise.shape[1] + 1, z.shape[1])


def _expansion_backward_fake(grad, z, w, noise):
    return torch.empty_like(z)


def _expansion_setup(ctx, inputs, output):
    z, w, noise = inputs
    ctx.save_for_backward(z, w, noise)


def _expansion_backward(ctx, grad):
    z, w, noise = ctx.saved_tensors
    with torch.no_grad():
        grad_z = _op("expansion_backward")(grad.contiguous(), z, w, noise) if ctx.needs_input_grad[0] else None
    return no_second_derivative("expansion", (grad_z, None, None), (grad, z))


def _slerp_fake(a, b, t):
    torch._check(a.shape == b.shape and t.shape[0] == a.shape[0])
    return torch.empty_like(a)


def _slerp_backward_fake(grad, a, b, t):
    return torch.empty_like(a), torch.empty_like(b), torch.empty_like(t)


def _slerp_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _slerp_backward(ctx, grad):
    a, b, t = ctx.saved_tensors
    with torch.no_grad():
        grads = _op("slerp_backward")(grad.contiguous(), a, b, t)
    grads = tuple(g if needed else None for g, needed in zip(grads, ctx.needs_input_grad))
    return no_second_derivative("slerp", grads, (grad, a, b, t))


def _proxy_anchor_fake(x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, compute_grad,
                       synthetic_grad, class_offset=0, total_classes=None, chunk_bytes=None):
    # As the kernels: without compute_grad every gradient output is empty,
    # whatever synthetic_grad says; with it, dL/dsynthetic only when asked.
    if not compute_grad:
        return x.new_empty(()), _empty_gradient(x), _empty_gradient(proxies), _empty_gradient(synthetic)
    grad_synthetic = torch.empty_like(synthetic) if synthetic_grad else _empty_gradient(synthetic)
    return x.new_empty(()), torch.empty_like(x), torch.empty_like(proxies), grad_synthetic


def _proxy_anchor_setup(ctx, inputs, output):
    x, _, proxies, synthetic = inputs[:4]
    _, grad_x, grad_proxies, grad_synthetic = output
    # The inputs are saved only for autograd's version check: the gradients were
    # formed from their values in the forward pass, so changing them in place
    # before the backward must be an error, as it is for the reference.
    ctx.save_for_backward(grad_x, grad_proxies, grad_synthetic, x, proxies, synthetic)
    # Which gradients the kernel formed (compute_grad, synthetic_grad): an empty output may also be
    # the gradient of an empty input (a shard without classes).
    ctx.computed = inputs[8], inputs[8] and inputs[9]
    ctx.set_materialize_grads(False)  # the gradient outputs get no incoming gradient: skip their zeros


def _proxy_anchor_backward(ctx, grad_loss, *_unused):
    grad_x, grad_proxies, grad_synthetic, x, proxies, synthetic = ctx.saved_tensors
    if grad_loss is None:
        return (None,) * 13
    computed, synthetic_computed = ctx.computed
    if not computed and (ctx.needs_input_grad[0] or ctx.needs_input_grad[2]):
        raise RuntimeError("see_cuda: the fused loss was computed without gradients (grad mode was off)")

    def scaled(g, needed):
        return g * grad_loss if needed else None

    with torch.no_grad():
        grads = (
            scaled(grad_x, ctx.needs_input_grad[0]), None, scaled(grad_proxies, ctx.needs_input_grad[2]),
            # No synthetic rows: no gradient, as the reference leaves an empty synthetic part out of the graph.
            scaled(grad_synthetic, ctx.needs_input_grad[3] and synthetic_computed and synthetic.shape[0] > 0),
            *(None,) * 9,
        )
    return no_second_derivative("proxy_anchor_fused", grads, (grad_loss, x, proxies, synthetic))


# SelectionState's int64 words (csrc/cuda/see_loss_launch.h): k, N, |P+| of two parts, the flags.
_SELECTION_STATE_WORDS = 5


def _see_loss_fake(x, labels, proxies, noise, seed, n_expansion, num_selected, threshold, lam, alpha, margin,
                   compute_grad, chunk_bytes=None, products="float32"):
    # As the kernels: the CPU forms the gradients in the forward; CUDA returns the state its backward
    # reads (csrc/cuda/see_loss_launch.h, saved_state_size) and leaves the gradients to it.
    B, D = x.shape
    C = proxies.shape[0]
    forms_gradients = compute_grad and x.device.type != "cuda"
    keeps_state = compute_grad and x.device.type == "cuda"
    most_expanded = B if num_selected is None else min(num_selected, B)
    max_rows = B + most_expanded * n_expansion
    return (x.new_empty(()),
            torch.empty_like(x) if forms_gradients else _empty_gradient(x),
            torch.empty_like(proxies) if forms_gradients else _empty_gradient(proxies),
            x.new_empty((), dtype=torch.int64), x.new_empty(()), x.new_empty((), dtype=torch.int64),
            x.new_empty(max_rows * D + B + 9 * C if keeps_state else 0),
            x.new_empty(max_rows + _SELECTION_STATE_WORDS if keeps_state else 0, dtype=torch.int64))


def _see_loss_backward_fake(grad_loss, labels, proxies, saved_values, saved_indices, alpha, products="float32"):
    return proxies.new_empty(labels.shape[0], proxies.shape[1]), torch.empty_like(proxies)


if HAVE_EXTENSION:
    torch.library.register_fake("see_cuda::mmd_centers_", _mmd_centers_fake)
    torch.library.register_fake("see_cuda::philox_normal_", _philox_normal_fake)
    torch.library.register_fake("see_cuda::expansion", _expansion_fake)
    torch.library.register_fake("see_cuda::expansion_backward", _expansion_backward_fake)
    torch.library.register_fake("see_cuda::slerp", _slerp_fake)
    torch.library.register_fake("see_cuda::slerp_backward", _slerp_backward_fake)
    torch.library.register_fake("see_cuda::proxy_anchor_fused", _proxy_anchor_fake)
    torch.library.register_fake("see_cuda::see_loss_fused", _see_loss_fake)
    torch.library.register_fake("see_cuda::see_loss_fused_backward", _see_loss_backward_fake)
    torch.library.register_autograd("see_cuda::expansion", _expansion_backward, setup_context=_expansion_setup)
    torch.library.register_autograd("see_cuda::slerp", _slerp_backward, setup_context=_slerp_setup)
    torch.library.register_autograd(
        "see_cuda::proxy_anchor_fused", _proxy_anchor_backward, setup_context=_proxy_anchor_setup
    )
