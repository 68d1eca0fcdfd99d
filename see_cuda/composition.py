"""The SEE loss, composed once: select, expand, score (docs/method.md §2-4).

The composition takes its primitives as an argument. The reference
(`see_cuda.reference.see_loss`) passes the pure-PyTorch statement of each step;
the fused path (`see_cuda.dispatch`) passes the compiled operators. The one-call
kernel `ops.see_loss_fused` computes the same function in one pass and is
tested against this composition.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .selection import select_for_expansion
from .stats import SEEStats


class SEEPrimitives(NamedTuple):
    """The steps the SEE loss is made of, for one implementation.

    class_proxies(proxies, labels): the proxy row of each label (B x D).
    positive_cosines(x, axes): s_i = x̂_i · â_i, detached (docs/method.md §2).
    draw_noise(k, n, D, dtype, device, generator): the k x (n-1) x D draws of
        the random frames (docs/method.md §5).
    expand(z, w, n, noise): the k x n x D synthetic points of sources z about
        axes w (docs/method.md §3); noise k x (n-1) x D.
    proxy_anchor(x, y, proxies, synthetic, synthetic_labels, lam, alpha,
        margin, synthetic_grad): PA(x) + λ·PA(synthetic) (docs/method.md §1, §4);
        synthetic None for plain Proxy-Anchor.
    """

    class_proxies: Callable
    positive_cosines: Callable
    draw_noise: Callable
    expand: Callable
    proxy_anchor: Callable


def see_loss(x, y, proxies, options, primitives: SEEPrimitives, generator=None, noise=None):
    """(loss, SEEStats) of PA(x, y, P) + λ · PA(Z, y_Z, P), Z the synthetic points (docs/method.md §4).

    `options` is a SEEOptions. `noise`, when given, is B x (n-1) x D (one slice
    per batch row; the selected rows' slices are used); otherwise k x (n-1) x D
    draws come from `generator`. The axes of the expansion are the proxies,
    detached (docs/method.md §4).
    """
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    axes = primitives.class_proxies(proxies, y).detach()
    s = primitives.positive_cosines(x, axes)
    if not options.expands:
        loss = primitives.proxy_anchor(x, y, proxies, None, None, 0.0, options.alpha, options.margin, False)
        return loss, SEEStats(num_expanded=0, num_synthetic=0, mean_positive_cosine=s.mean())
    selected = select_for_expansion(s, options.mode, options.ratio, options.threshold)
    k, n, D = selected.numel(), options.n_expansion, x.shape[1]
    source = x[selected].detach() if options.detach_synthetic else x[selected]
    noise_k = primitives.draw_noise(k, n, D, dtype, x.device, generator) if noise is None else noise[selected]
    synthetic = primitives.expand(source, axes[selected], n, noise_k)
    synthetic_labels = y[selected].repeat_interleave(n)
    loss = primitives.proxy_anchor(
        x, y, proxies, synthetic.reshape(k * n, D), synthetic_labels, options.lam, options.alpha, options.margin,
        not options.detach_synthetic,
    )
    return loss, SEEStats(num_expanded=k, num_synthetic=k * n, mean_positive_cosine=s.mean())
