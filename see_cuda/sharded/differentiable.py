"""The two collectives autograd passes through: the gather of the rows and the sum of the loss.

Every process computes its share L_r of the loss from all rows X (gathered)
and its own proxies; the loss is L = Σ_r L_r, the same on every process.
  - sum_over_ranks(L_r) returns L; its backward passes the incoming gradient
    on unchanged (dL/dL_r = 1): each process differentiates its own share.
  - gather_rows(x_r) returns X; its backward receives dL_r/dX, sums it over
    the processes (one all-reduce of N x D) and returns this process's rows:
    each x_r gets the full dL/dx_r, as on one process holding every proxy.
The proxies of a process enter only its own share, so their gradient, dL/dP_r
= dL_r/dP_r, is complete where it is formed and is never communicated. Every
process must run the backward of the same loss (the all-reduce inside it is a
collective), with the same incoming gradient.

Under DistributedDataParallel, which AVERAGES the network's gradient over the W
processes, gather_rows(x_r, scale=W) returns W·dL/dx_r instead, so that the average
is the one-process gradient (the loss and the proxies' gradient are unchanged).
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import collectives


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local, group, scale):
        ctx.group, ctx.scale = group, scale
        ctx.rows = local.shape[0]
        return collectives.all_gather_rows(local, group)

    @staticmethod
    @once_differentiable  # a second derivative would need a collective of its own: refused, not dropped
    def backward(ctx, grad):
        rank, _ = collectives.rank_and_world(ctx.group)
        total = collectives.all_reduce(grad.clone(memory_format=torch.contiguous_format), ctx.group)
        rows = total[rank * ctx.rows:(rank + 1) * ctx.rows]
        return (rows if ctx.scale == 1 else rows * ctx.scale), None, None


class _SumOverRanks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, share, group):
        return collectives.all_reduce(share.detach().clone(), group)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def gather_rows(local: torch.Tensor, group=None, scale: int = 1) -> torch.Tensor:
    """All processes' rows (equal counts) in rank order; the backward sums dL/drows over processes
    and multiplies it by `scale` (the world size under DDP, see the module docstring)."""
    if collectives.rank_and_world(group)[1] == 1:
        return local
    return _GatherRows.apply(local, group, scale)


def sum_over_ranks(share: torch.Tensor, group=None) -> torch.Tensor:
    """Σ over processes of `share`; each process's share gets the incoming gradient unchanged."""
    if collectives.rank_and_world(group)[1] == 1:
        return share
    return _SumOverRanks.apply(share, group)
