"""The fused kernels as PyTorch operators: typed wrappers, fake kernels, autograd.

The C++/CUDA kernels are registered under `torch.ops.see_cuda` by the compiled
extension; this module adds what PyTorch needs around them: shape functions for
`torch.compile` (`register_fake`) and backward formulas (`register_autograd`).
Inputs are assumed valid (see `see_cuda.validation`), contiguous, and of one
dtype (float32 or float64).
"""
from __future__ import annotations

import torch

from ._extension import HAVE_EXTENSION

if HAVE_EXTENSION:
    _ops = torch.ops.see_cuda

    # ------------------------------------------------------------ MMD centers
    def mmd_centers_into(out: torch.Tensor, radius: float) -> torch.Tensor:
        """Fills a num_centers x dim float64 tensor with the Max-Mahalanobis centers."""
        _ops.mmd_centers_.default(out, radius)
        return out

    # ------------------------------------------------------------ counter-based noise
    def philox_normal(seed: torch.Tensor, shape, dtype: torch.dtype, device=None) -> torch.Tensor:
        """Elements 0 .. numel-1 of the normal stream `seed` (see_cuda.noise), in row-major order.

        seed: 0-d int64 tensor on `device` (default: the seed's device); dtype:
        float32 or float64.
        """
        out = torch.empty(shape, dtype=dtype, device=seed.device if device is None else device)
        _ops.philox_normal_.default(out, seed)
        return out

    @torch.library.register_fake("see_cuda::philox_normal_")
    def _philox_normal_fake(out, seed):
        torch._check(out.dtype in (torch.float32, torch.float64), lambda: "out must be float32 or float64")
        torch._check(seed.dim() == 0 and seed.dtype == torch.int64, lambda: "seed must be a 0-d int64 tensor")

    # ------------------------------------------------------------ expansion
    def expansion(z: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """k x n x D synthetic points of k sources z about proxies w; noise is k x (n-1) x D."""
        return _ops.expansion.default(z, w, noise)

    @torch.library.register_fake("see_cuda::expansion")
    def _expansion_fake(z, w, noise):
        torch._check(z.shape == w.shape, lambda: "z and w must have one shape")
        torch._check(noise.shape[0] == z.shape[0] and noise.shape[2] == z.shape[1])
        return z.new_empty(z.shape[0], noise.shape[1] + 1, z.shape[1])

    @torch.library.register_fake("see_cuda::expansion_backward")
    def _expansion_backward_fake(grad, z, w, noise):
        return torch.empty_like(z)

    def _expansion_setup(ctx, inputs, output):
        z, w, noise = inputs
        ctx.save_for_backward(z, w, noise)

    def _expansion_backward(ctx, grad):
        z, w, noise = ctx.saved_tensors
        grad_z = _ops.expansion_backward.default(grad.contiguous(), z, w, noise) if ctx.needs_input_grad[0] else None
        return grad_z, None, None

    torch.library.register_autograd("see_cuda::expansion", _expansion_backward, setup_context=_expansion_setup)

    # ------------------------------------------------------------ slerp
    def slerp_rows(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Row-wise slerp of R x D inputs at R parameters t."""
        return _ops.slerp.default(a, b, t)

    @torch.library.register_fake("see_cuda::slerp")
    def _slerp_fake(a, b, t):
        torch._check(a.shape == b.shape and t.shape[0] == a.shape[0])
        return torch.empty_like(a)

    @torch.library.register_fake("see_cuda::slerp_backward")
    def _slerp_backward_fake(grad, a, b, t):
        return torch.empty_like(a), torch.empty_like(b), torch.empty_like(t)

    def _slerp_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _slerp_backward(ctx, grad):
        a, b, t = ctx.saved_tensors
        grad_a, grad_b, grad_t = _ops.slerp_backward.default(grad.contiguous(), a, b, t)
        return grad_a, grad_b, grad_t

    torch.library.register_autograd("see_cuda::slerp", _slerp_backward, setup_context=_slerp_setup)

    # ------------------------------------------------------------ Proxy-Anchor with expansion
    def proxy_anchor_fused(x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, synthetic_grad=False):
        """PA(x) + lam·PA(synthetic), one 0-d loss; gradients are formed in the forward pass.

        The kernel writes dL/dx, dL/dproxies (and dL/dsynthetic when asked) while
        the similarities are at hand, so the backward is a scaling by the incoming
        gradient and no N x C matrix outlives the call.
        """
        compute_grad = torch.is_grad_enabled() and (
            x.requires_grad or proxies.requires_grad or (synthetic_grad and synthetic.requires_grad)
        )
        outputs = _ops.proxy_anchor_fused.default(
            x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, compute_grad,
            compute_grad and synthetic_grad and synthetic.requires_grad,
        )
        return outputs[0]

    @torch.library.register_fake("see_cuda::proxy_anchor_fused")
    def _proxy_anchor_fake(x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, compute_grad, synthetic_grad):
        def grad_like(t, wanted):
            return torch.empty_like(t) if wanted else t.new_empty(0)

        loss = x.new_empty(())
        return loss, grad_like(x, compute_grad), grad_like(proxies, compute_grad), grad_like(synthetic, synthetic_grad)

    def _proxy_anchor_setup(ctx, inputs, output):
        _, grad_x, grad_proxies, grad_synthetic = output
        ctx.save_for_backward(grad_x, grad_proxies, grad_synthetic)
        ctx.set_materialize_grads(False)  # the gradient outputs get no incoming gradient: skip their zeros

    def _proxy_anchor_backward(ctx, grad_loss, *_unused):
        grad_x, grad_proxies, grad_synthetic = ctx.saved_tensors
        if grad_loss is None:
            return (None,) * 10
        if grad_x.numel() == 0 and (ctx.needs_input_grad[0] or ctx.needs_input_grad[2]):
            raise RuntimeError("see_cuda: the fused loss was computed without gradients (grad mode was off)")

        def scaled(g, needed):
            return g * grad_loss if needed and g.numel() > 0 else None

        return (
            scaled(grad_x, ctx.needs_input_grad[0]), None, scaled(grad_proxies, ctx.needs_input_grad[2]),
            scaled(grad_synthetic, ctx.needs_input_grad[3]), None, None, None, None, None, None,
        )

    torch.library.register_autograd(
        "see_cuda::proxy_anchor_fused", _proxy_anchor_backward, setup_context=_proxy_anchor_setup
    )

    # ------------------------------------------------------------ the whole SEE loss
    def see_loss_fused(x, labels, proxies, noise, seed, n_expansion, num_selected, threshold, lam, alpha, margin):
        """(loss, number expanded, mean positive cosine) of the SEE loss with detached synthetic points.

        num_selected >= 0 expands that many best-fitted rows; -1 expands those
        with cosine >= threshold. The draws come from `noise` (B x (n-1) x D)
        or, when it is None, from the Philox stream of `seed` (0-d int64).
        Gradients are formed in the forward pass, as in proxy_anchor_fused; the
        autograd formula is registered in C++ (csrc/see_loss_autograd.cpp).
        """
        compute_grad = torch.is_grad_enabled() and (x.requires_grad or proxies.requires_grad)
        loss, _, _, num_expanded, mean_cosine = _ops.see_loss_fused.default(
            x, labels, proxies, noise, seed, n_expansion, num_selected, threshold, lam, alpha, margin, compute_grad
        )
        return loss, num_expanded, mean_cosine

    @torch.library.register_fake("see_cuda::see_loss_fused")
    def _see_loss_fake(x, labels, proxies, noise, seed, n_expansion, num_selected, threshold, lam, alpha, margin,
                       compute_grad):
        def grad_like(t):
            return torch.empty_like(t) if compute_grad else t.new_empty(0)

        return (x.new_empty(()), grad_like(x), grad_like(proxies), x.new_empty((), dtype=torch.int64),
                x.new_empty(()))
