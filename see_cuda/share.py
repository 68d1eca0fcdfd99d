"""A share of the classes of PA(x) + λ·PA(synthetic) by the reference, in chunks of classes.

The share of a set of classes is the sum of the shares of any partition of
it (reference.proxy_anchor_share), so the classes are taken a chunk at a
time. A chunk's similarity matrix, rows x classes, holds at most `chunk_bytes`
(at least one class per chunk), and its autograd graph is not kept: it is
recomputed in the backward (torch.utils.checkpoint). The reference holds a
few matrices of that size at once (cosines, logits, exponentials and their
gradients), so its peak is a small multiple of the budget; the compiled op
with the same argument holds about one.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from . import reference, validation
from .constants import DEFAULT_CHUNK_BYTES

__all__ = ["DEFAULT_CHUNK_BYTES", "chunk_budget", "classes_per_chunk", "reference_share"]


def chunk_budget(chunk_bytes) -> int:
    """The budget in bytes, checked (validation.check_chunk_bytes): None means DEFAULT_CHUNK_BYTES."""
    validation.check_chunk_bytes(chunk_bytes)
    return DEFAULT_CHUNK_BYTES if chunk_bytes is None else chunk_bytes


def classes_per_chunk(num_rows: int, dtype: torch.dtype, chunk_bytes: int) -> int:
    """How many classes' similarities of `num_rows` rows fit in `chunk_bytes` (at least one)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(1, chunk_bytes // max(1, num_rows * itemsize))


def _share(x, y, proxies, synthetic, synthetic_labels, lam, alpha, margin, class_offset, total_classes):
    share = reference.proxy_anchor_share(x, y, proxies, class_offset, total_classes, alpha, margin)
    if synthetic is None or synthetic.shape[0] == 0:
        return share
    return share + lam * reference.proxy_anchor_share(
        synthetic, synthetic_labels, proxies, class_offset, total_classes, alpha, margin)


def reference_share(x, y, proxies, synthetic, synthetic_labels, settings, lam, synthetic_grad=False, *,
                    class_offset: int, total_classes: int, chunk_bytes: int | None = None):
    """The terms of the classes [class_offset, class_offset + C_local) of PA(x) + λ·PA(synthetic).

    The scoring primitive's arguments (settings: a ProxyAnchorSettings).
    Weights and labels are global (reference.proxy_anchor_share). Autograd
    decides where gradients go (synthetic_grad is for the compiled op).
    """
    validation.check_class_shard(proxies.shape[0], class_offset, total_classes)
    alpha, margin = settings.alpha, settings.margin
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    num_rows = x.shape[0] + (0 if synthetic is None else synthetic.shape[0])
    per_chunk = classes_per_chunk(num_rows, dtype, chunk_budget(chunk_bytes))
    num_local = proxies.shape[0]
    if per_chunk >= num_local:
        return _share(x, y, proxies, synthetic, synthetic_labels, lam, alpha, margin, class_offset, total_classes)
    total = None
    # One split, not a slice per chunk: a slice's backward fills a zero tensor of all the proxies, per chunk.
    for index, chunk in enumerate(proxies.split(per_chunk)):
        part = checkpoint(_share, x, y, chunk, synthetic, synthetic_labels, lam, alpha, margin,
                          class_offset + index * per_chunk, total_classes, use_reentrant=False)
        total = part if total is None else total + part
    return total
