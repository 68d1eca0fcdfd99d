"""The SEE loss, composed once: select, expand, score (docs/method.md §2-4).

The composition takes its primitives as an argument. The reference
(`see_cuda.reference.PRIMITIVES`) is the pure-PyTorch statement of each step;
the fused path (`see_cuda.fused.PRIMITIVES`) the compiled operators;
see_cuda.dispatch chooses between them and adds the base loss's scoring
primitive, keyed by the class of the loss's settings. The one-call kernel
`ops.see_loss_fused` computes the same function in one pass and is tested
against this composition.
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
    draw_seed(generator, device): the 0-d int64 seed of the random frames'
        stream, one draw of `generator` (docs/method.md §5).
    draws(seed, shape, dtype): elements 0 .. numel-1 of the stream `seed`,
        for work in `dtype` (docs/method.md §5).
    expand(z, w, n, noise): the k x n x D synthetic points of sources z about
        axes w (docs/method.md §3); noise k x (n-1) x D.
    loss(x, y, proxies, synthetic, synthetic_labels, settings, lam,
        synthetic_grad): the base loss L(x) + λ·L(synthetic) (docs/method.md
        §1, §4), 0-d; synthetic None for the base loss alone; `settings` the
        base loss's settings (e.g. a ProxyAnchorSettings); synthetic_grad
        whether the synthetic rows need a gradient (what a kernel must be told).
    """

    class_proxies: Callable
    positive_cosines: Callable
    draw_seed: Callable
    draws: Callable
    expand: Callable
    loss: Callable


class BaseLoss(NamedTuple):
    """A base loss as the composition scores with it: its primitives, one per implementation.

    reference: the pure-PyTorch scoring primitive (SEEPrimitives.loss).
    fused: the compiled one, same arguments, and the keyword chunk_bytes
        (and, where the loss splits over the classes, class_offset and
        total_classes: a share of the classes, in chunks).
    reference_share: the reference's share of the classes in chunks, with
        the keywords of `fused` (see_cuda.sharded), or None where the loss
        does not split over the classes (the softmax family merges each
        row's log-sum-exp instead: see_cuda.sharded.softmax_family).
    fused_op: the op whose kernel `fused` needs (None: the library's probe op,
        which every backend of the extension has).
    one_call_op: the op that computes the whole SEE loss with this base loss
        in one call (detached synthetic points), or None.
    one_call: (x, y, proxies, expansion, settings, generator, noise,
        chunk_bytes, products) -> (loss, SEEStats, value flags) by that op.
    one_call_checks: per device type, the value checks that op makes itself
        (it raises), of the groups of validation.check_values (rows: in the
        kernel's dtype); a device type not named checks none of them itself.
    one_call_flags: per device type, the value checks that op's kernels make
        on the device without raising: they flag the call (its value flags)
        and make its loss NaN; the deferred check reads the flags.
    """

    reference: Callable
    fused: Callable
    reference_share: Callable | None
    fused_op: str | None = None
    one_call_op: str | None = None
    one_call: Callable | None = None
    one_call_checks: dict = {}
    one_call_flags: dict = {}


def see_loss(x, y, proxies, expansion, settings, primitives: SEEPrimitives, generator=None, noise=None):
    """(loss, SEEStats) of L(x, y, P) + λ · L(Z, y_Z, P), Z the synthetic points (docs/method.md §4).

    `expansion` is a SphericalExpansion, `settings` the base loss L's
    settings. `noise`, when given, is B x (n-1) x D (one slice per batch row;
    the selected rows' slices are used); otherwise k x (n-1) x D draws come
    from `generator`. The axes of the expansion are the proxies, detached
    (docs/method.md §4).
    """
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    axes = primitives.class_proxies(proxies, y).detach()
    s = primitives.positive_cosines(x, axes)
    if not expansion.expands:
        loss = primitives.loss(x, y, proxies, None, None, settings, 0.0, False)
        return loss, SEEStats(num_expanded=0, num_synthetic=0, mean_positive_cosine=s.mean())
    selected = select_for_expansion(s, expansion.mode, expansion.ratio, expansion.threshold)
    k, n, D = selected.numel(), expansion.n_expansion, x.shape[1]
    source = x[selected].detach() if expansion.detach_synthetic else x[selected]
    if noise is None:
        noise_k = primitives.draws(primitives.draw_seed(generator, x.device), (k, n - 1, D), dtype)
    else:
        noise_k = noise[selected]
    synthetic = primitives.expand(source, axes[selected], n, noise_k)
    synthetic_labels = y[selected].repeat_interleave(n)
    loss = primitives.loss(x, y, proxies, synthetic.reshape(k * n, D), synthetic_labels, settings, expansion.lam,
                           not expansion.detach_synthetic)
    return loss, SEEStats(num_expanded=k, num_synthetic=k * n, mean_positive_cosine=s.mean())
