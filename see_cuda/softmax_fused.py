"""The softmax-family loss by the compiled kernels (docs/method.md §7), as an autograd function.

Two operators: `softmax_family_rows` takes each row's LSE over the classes
online, in chunks (N x 4 float64: max, sum, target logit, whether the target
was among the classes), and `softmax_family_grad` forms the gradients from
the final LSE, forming each chunk's cosines again. Nothing N x C outlives a
chunk. The loss, Σ_i w_i (LSE_i - z_iy) with w_i = 1/B for the batch and
λ/M for the M synthetic rows, is formed here from O(N) numbers.
"""
from __future__ import annotations

import torch

from . import transforms
from ._extension import HAVE_EXTENSION
from .fused import kernel_dtype
from .loss_settings import LogitMap


def _op(name: str):
    return getattr(torch.ops.see_cuda, name).default


def row_stats(x, labels, classes, logit_map: LogitMap, class_offset: int = 0, chunk_bytes=None) -> torch.Tensor:
    """N x 4 float64 (max, sum, target logit, found) of the rows over the classes [class_offset, +C)."""
    return _op("softmax_family_rows")(x, labels, classes, *map(float, logit_map[:2]), int(logit_map.margin_kind),
                                      float(logit_map.margin), int(class_offset),
                                      None if chunk_bytes is None else int(chunk_bytes))


def row_grads(x, labels, classes, lse, weight, logit_map: LogitMap, class_offset: int = 0, chunk_bytes=None):
    """(dL/dx, dL/dclasses) of Σ_i weight_i (LSE_i - z_iy) over these classes, given the rows' final LSE."""
    return _op("softmax_family_grad")(x, labels, classes, lse, weight, *map(float, logit_map[:2]),
                                      int(logit_map.margin_kind), float(logit_map.margin), int(class_offset),
                                      None if chunk_bytes is None else int(chunk_bytes))


def row_terms(stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(LSE_i, ℓ_i = LSE_i - z_iy) from the rows' stats; a row whose target was not found is NaN."""
    row_max, row_sum, target, found = stats.unbind(1)
    lse = row_max + torch.log(row_sum)
    return lse, torch.where(found == 1, lse - target, torch.full_like(lse, float("nan")))


class SoftmaxFamilyLoss(torch.autograd.Function):
    """Σ_i weight_i ℓ_i of rows (N x D) and classes (C x D, any strides), in the rows' dtype."""

    @staticmethod
    def forward(ctx, rows, labels, classes, weight, logit_map, chunk_bytes):
        lse, terms = row_terms(row_stats(rows, labels, classes, logit_map, 0, chunk_bytes))
        ctx.save_for_backward(rows, labels, classes, lse, weight)
        ctx.logit_map, ctx.chunk_bytes = logit_map, chunk_bytes
        return (weight * terms).sum().to(rows.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        rows, labels, classes, lse, weight = ctx.saved_tensors
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[2]):
            return (None,) * 6
        with torch.no_grad():
            grad_rows, grad_classes = row_grads(rows, labels, classes, lse, weight, ctx.logit_map, 0, ctx.chunk_bytes)
        return (grad_rows * grad_loss if ctx.needs_input_grad[0] else None, None,
                grad_classes * grad_loss if ctx.needs_input_grad[2] else None, None, None, None)


def weighted_rows(x, y, synthetic, synthetic_labels, lam, dtype):
    """(rows, int64 labels, float64 weights) of L(X) + λ·L(Z) as one weighted sum over rows, rows in `dtype`:
    the batch's weights 1/B, the M synthetic rows' λ/M (docs/method.md §7)."""
    B = x.shape[0]
    weight = torch.full((B,), 1.0 / B, dtype=torch.float64, device=x.device)
    rows, labels = x.to(dtype), y
    if synthetic is not None and synthetic.shape[0] > 0:
        M = synthetic.shape[0]
        rows, labels = torch.cat([rows, synthetic.to(dtype)]), torch.cat([y, synthetic_labels])
        weight = torch.cat([weight, torch.full((M,), lam / M, dtype=torch.float64, device=x.device)])
    return rows.contiguous(), labels.to(torch.int64).contiguous(), weight


def fused_softmax_family(x, y, classes, synthetic, synthetic_labels, lam, logit_map: LogitMap, chunk_bytes=None):
    """L(X) + λ·L(Z) by the kernels, in the promoted dtype of x and classes (float32 or float64 inside)."""
    transforms.refuse_fused_op("softmax_family_rows")
    dtype = torch.promote_types(x.dtype, classes.dtype)
    kd = kernel_dtype(dtype)
    rows, labels, weight = weighted_rows(x, y, synthetic, synthetic_labels, lam, kd)
    loss = SoftmaxFamilyLoss.apply(rows, labels, classes.to(kd), weight, logit_map, chunk_bytes)
    return loss.to(dtype)


def loss(x, y, classes, synthetic, synthetic_labels, settings, lam, synthetic_grad=False, *, chunk_bytes=None):
    """The scoring primitive of the SEE composition (composition.SEEPrimitives.loss), fused, for the loss whose
    settings (see_cuda.loss_settings) are `settings`. chunk_bytes: the cosines' memory budget (None: the default)."""
    return fused_softmax_family(x, y, classes, synthetic, synthetic_labels, lam, settings.logit_map, chunk_bytes)


def _rows_fake(x, labels, classes, scale, bias, margin_kind, margin, class_offset=0, chunk_bytes=None):
    return x.new_empty((x.shape[0], 4), dtype=torch.float64)


def _grad_fake(x, labels, classes, lse, weight, scale, bias, margin_kind, margin, class_offset=0, chunk_bytes=None):
    return torch.empty_like(x), classes.new_empty(classes.shape)


if HAVE_EXTENSION and hasattr(torch.ops.see_cuda, "softmax_family_rows"):
    torch.library.register_fake("see_cuda::softmax_family_rows", _rows_fake)
    torch.library.register_fake("see_cuda::softmax_family_grad", _grad_fake)
