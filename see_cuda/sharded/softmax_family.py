"""The softmax-family losses (docs/method.md §7) with the class vectors sharded over processes.

Each process holds the class vectors of its classes (see_cuda.sharded.class_shard)
and scores all rows (gathered) against them. A row's LSE over all classes is
the merge of the shards' (max, sum) pairs, and its target logit comes from the
one process that holds its class: the processes exchange 3 numbers per row
(an all-reduce of the maxima, then one of the rescaled sums, target logits and
target counts), never anything that grows with C. The loss, formed from those
O(N) numbers, is the same on every process. In the backward each process forms
the gradient of its own class vectors (complete where it is formed) and its
part of dL/drows, which the gather of the rows sums over processes (O(N·D)).
"""
from __future__ import annotations

import dataclasses

import torch

from .. import composition, dispatch, softmax_fused
from ..fused import kernel_dtype
from ..loss_settings import LogitMap
from ..options import SphericalExpansion
from ..reference import l2_normalize
from ..share import chunk_budget
from ..softmax_functional import checked_family_arguments
from ..softmax_reference import target_margin
from . import collectives
from .agreement import loss_settings, require_agreement
from .differentiable import gather_rows
from .functional import _check_local_inputs
from .partition import ClassShard, class_shard
from .primitives import sharded_primitives


# ---------------------------------------------------------------- the two passes, compiled or in PyTorch
def _logits(rows, labels, classes, logit_map: LogitMap, offset: int):
    s = l2_normalize(rows) @ l2_normalize(classes).t()
    local = labels - offset
    target = (local.unsqueeze(1) == torch.arange(classes.shape[0], device=rows.device))
    return logit_map.scale * torch.where(target, target_margin(s, logit_map), s) + logit_map.bias, target


def reference_row_stats(rows, labels, classes, logit_map: LogitMap, offset: int, chunk_bytes=None) -> torch.Tensor:
    """softmax_family_rows's N x 4 (max, sum, target logit, found) in PyTorch (no gradient)."""
    with torch.no_grad():
        z, target = _logits(rows, labels, classes, logit_map, offset)
        top = z.amax(1)
        total = torch.exp(z - top.unsqueeze(1)).sum(1)
        found = target.any(1)
        target_logit = torch.where(target, z, torch.zeros_like(z)).sum(1)
        return torch.stack([top, total, target_logit, found.to(z.dtype)], 1).double()


def reference_row_grads(rows, labels, classes, lse, weight, logit_map: LogitMap, offset: int, chunk_bytes=None):
    """softmax_family_grad's (dL/drows, dL/dclasses) in PyTorch: Σ_i w_i (p_ic - [c = y_i]) through the logits."""
    with torch.enable_grad():
        rows_, classes_ = rows.detach().requires_grad_(), classes.detach().requires_grad_()
        z, target = _logits(rows_, labels, classes_, logit_map, offset)
        p = torch.exp(z.detach() - lse.to(z.dtype).unsqueeze(1))
        dz = weight.to(z.dtype).unsqueeze(1) * (p - target.to(z.dtype))
        return torch.autograd.grad(z, [rows_, classes_], dz)


def merged_row_terms(stats: torch.Tensor, group=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(LSE_i, ℓ_i) over every process's classes from each process's (max, sum, target, found)."""
    row_max, row_sum, target, found = stats.unbind(1)
    top = collectives.all_reduce(torch.where(row_sum > 0, row_max, torch.full_like(row_max, -torch.inf)), group,
                                 op=torch.distributed.ReduceOp.MAX)
    # A shard's sum rescaled to the common maximum; a NaN maximum stays NaN through the product.
    scaled = torch.where(row_sum > 0, row_sum * torch.exp(row_max - top), row_sum)
    merged = collectives.all_reduce(torch.stack([scaled, target * found, found]), group)
    lse = top + torch.log(merged[0])
    return lse, torch.where(merged[2] == 1, lse - merged[1], torch.full_like(lse, float("nan")))


class _ShardedSoftmaxLoss(torch.autograd.Function):
    """Σ_i w_i ℓ_i over all classes, the same on every process; each process differentiates its own classes."""

    @staticmethod
    def forward(ctx, rows, labels, classes, weight, logit_map, shard, group, passes, chunk_bytes):
        stats_fn, grads_fn = passes
        lse, terms = merged_row_terms(stats_fn(rows, labels, classes, logit_map, shard.offset, chunk_bytes), group)
        ctx.save_for_backward(rows, labels, classes, lse, weight)
        ctx.logit_map, ctx.offset, ctx.grads_fn, ctx.chunk_bytes = logit_map, shard.offset, grads_fn, chunk_bytes
        return (weight * terms).sum().to(rows.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        rows, labels, classes, lse, weight = ctx.saved_tensors
        with torch.no_grad():
            grad_rows, grad_classes = ctx.grads_fn(rows, labels, classes, lse, weight, ctx.logit_map, ctx.offset,
                                                   ctx.chunk_bytes)
        return grad_rows * grad_loss, None, grad_classes * grad_loss, *(None,) * 6


def sharded_scoring_primitive(logit_map: LogitMap, shard: ClassShard, group, fused: bool, chunk_bytes):
    """The loss step of the SEE composition for this process's shard of the classes."""
    passes = ((softmax_fused.row_stats, softmax_fused.row_grads) if fused
              else (reference_row_stats, reference_row_grads))

    def score(x, y, classes, synthetic, synthetic_labels, settings, lam, synthetic_grad=False):
        dtype = torch.promote_types(x.dtype, classes.dtype)
        kd = kernel_dtype(dtype) if fused else dtype
        rows, labels, weight = softmax_fused.weighted_rows(x, y, synthetic, synthetic_labels, lam, kd)
        loss = _ShardedSoftmaxLoss.apply(rows, labels, classes.to(kd), weight, logit_map, shard, group, passes,
                                         chunk_bytes)
        return loss.to(dtype)

    return score


def sharded_softmax_family_loss(embeddings, labels, classes, num_classes: int, settings, *, group=None,
                                expansion: SphericalExpansion | None = None, generator=None, noise=None,
                                implementation: str = "auto", check_values: bool = True,
                                chunk_bytes: int | None = None, ddp_gradients: bool = False,
                                return_stats: bool = False):
    """The softmax-family loss (plain or with SEE) of the rows of every process, each holding its classes.

    Called on every process of `group` with the same settings: embeddings B x D (the same B everywhere),
    global labels in [0, num_classes), and `classes` the C_r x D vectors of this process's classes,
    class_shard(num_classes, rank, world) (any strides: a shard of PML's W as W_r.t()). Returns the loss of one
    process holding every class vector on all processes' rows in rank order, the same value everywhere;
    backward on every process gives each the full gradient of its rows and of its class vectors (the rows'
    multiplied by the world size with ddp_gradients=True, for DistributedDataParallel's average). The other
    arguments are softmax_family_see_loss's and see_cuda.sharded.sharded_see_loss's.
    """
    expansion = checked_family_arguments(settings, expansion)
    rank, world = collectives.rank_and_world(group)
    error = None
    try:
        shard = class_shard(num_classes, rank, world)
        labels = _check_local_inputs(embeddings, labels, classes, shard, world, expansion, settings, generator, noise,
                                     implementation, check_values, ddp_gradients)
        chunk_bytes = chunk_budget(chunk_bytes)
    except (TypeError, ValueError) as refused:
        error = refused
    if world > 1:  # every process raises together, or none does (see agreement.py)
        agreed = loss_settings(embeddings, classes, num_classes, expansion, implementation, check_values,
                               chunk_bytes, ddp_gradients, generator, noise)
        agreed.update({"the loss": type(settings).__name__,
                       **{field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}})
        require_agreement(agreed, error, group)
    elif error is not None:
        raise error
    plan = dispatch.plan(implementation, embeddings.device, settings, None, chunk_bytes)
    primitives = sharded_primitives(plan, shard, group, chunk_bytes)._replace(
        loss=sharded_scoring_primitive(settings.logit_map, shard, group, not plan.is_reference, chunk_bytes))
    rows = gather_rows(embeddings, group, scale=world if ddp_gradients else 1)
    all_labels = collectives.all_gather_rows(labels, group)
    loss, stats = composition.see_loss(rows, all_labels, classes, expansion, settings, primitives, generator, noise)
    return (loss, stats) if return_stats else loss
