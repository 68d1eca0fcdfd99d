"""The SEE primitives of one process holding a shard of the proxies (see_cuda.composition).

The composition runs unchanged on every process, on all the rows (gathered)
and this process's proxies; three primitives communicate, and each does so
with tensors whose size depends on the batch, never on the number of classes:
  class_proxies: the axis of each row, from the process that owns its class
      (the others contribute zeros): one all-reduce of N x D. The axes are
      constants (docs/method.md §4), so the positive cosines, the selection
      and the synthetic points are the same on every process;
  draw_seed: the seed of the random frames drawn on every process (each
      generator advances alike) and broadcast from the first: one int64;
  loss: this process's share of the loss, summed over processes
      (see_cuda.sharded.differentiable): one scalar.
"""
from __future__ import annotations

import torch

from .. import noise
from ..composition import SEEPrimitives
from ..dispatch import Plan
from . import collectives
from .differentiable import sum_over_ranks
from .partition import ClassShard


def sharded_primitives(plan: Plan, shard: ClassShard, group=None, chunk_bytes: int | None = None) -> SEEPrimitives:
    """The primitives of the SEE loss for the process holding `shard`'s proxies, for dispatch's `plan`."""
    share = plan.share

    def class_proxies(proxies, labels):
        with torch.no_grad():
            local = labels - shard.offset
            owned = ((local >= 0) & (local < shard.size)).unsqueeze(-1)
            rows = proxies.index_select(0, local.clamp(0, shard.size - 1))
            # where(), not a product with the mask: a non-finite proxy must not reach rows it does not own.
            return collectives.all_reduce(torch.where(owned, rows, torch.zeros_like(rows)), group)

    def draw_seed(generator, device):
        return collectives.broadcast(noise.draw_seed(generator, device), group)

    def loss(x, y, proxies, synthetic, synthetic_labels, settings, lam, synthetic_grad):
        local = share(x, y, proxies, synthetic, synthetic_labels, settings, lam, synthetic_grad,
                      class_offset=shard.offset, total_classes=shard.total, chunk_bytes=chunk_bytes)
        return sum_over_ranks(local, group)

    return plan.primitives._replace(class_proxies=class_proxies, draw_seed=draw_seed, loss=loss)
