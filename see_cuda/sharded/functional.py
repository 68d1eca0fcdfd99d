"""The SEE loss with the proxies sharded over processes: check, gather, compose."""
from __future__ import annotations

import torch

from .. import composition, dispatch, validation
from ..options import DEFAULTS, SEEOptions, resolve_options
from ..share import chunk_budget
from . import collectives
from .agreement import loss_settings, require_agreement
from .differentiable import gather_rows
from .partition import ClassShard, class_shard
from .primitives import sharded_primitives


def sharded_see_loss(embeddings, labels, proxies, num_classes: int, group=None,
                     n_expansion: int = DEFAULTS.n_expansion, lam: float = DEFAULTS.lam, mode: str = DEFAULTS.mode,
                     ratio: float = DEFAULTS.ratio, threshold: float = DEFAULTS.threshold,
                     alpha: float = DEFAULTS.alpha, margin: float = DEFAULTS.margin,
                     detach_synthetic: bool = DEFAULTS.detach_synthetic, generator=None, noise=None,
                     return_stats: bool = False, implementation: str = "auto", options: SEEOptions | None = None,
                     check_values: bool = True, chunk_bytes: int | None = None,
                     ddp_gradients: bool = False):
    """The SEE loss of the rows of every process, each process holding the proxies of its classes.

    Called on every process of `group` (default: the whole world) with the
    same settings: embeddings B x D and labels B (this process's rows, the
    same B everywhere; labels global, in [0, num_classes)), and proxies the
    C_r x D rows of this process's classes, class_shard(num_classes, rank,
    world) (contiguous ranges in rank order). Returns the loss of one
    process holding every proxy on the rows of all processes concatenated in
    rank order, the same value on every process; backward (on every
    process) gives each process the full gradient of its own rows and of its
    own proxies. `noise`, when given, is the N x (n-1) x D draws of all N
    rows, the same on every process; otherwise the first process's
    `generator` seeds the random frames (every process's generator advances
    alike). chunk_bytes bounds the similarity matrix of the share (default
    see_cuda.share.DEFAULT_CHUNK_BYTES). Each process's rows get dL/drows,
    their gradient on one process; ddp_gradients=True multiplies it by the
    number of processes, so that DistributedDataParallel, which averages the
    network's gradient over them, gives the network the gradient of one process
    (the loss and the proxies' gradient stay as they are). The other arguments
    are fused_see_loss's. Without a process group it is the loss of one process.
    """
    options = resolve_options(
        options, n_expansion=n_expansion, lam=lam, mode=mode, ratio=ratio, threshold=threshold, alpha=alpha,
        margin=margin, detach_synthetic=detach_synthetic,
    )
    loss, stats = sharded_see_loss_with_options(embeddings, labels, proxies, num_classes, options, group,
                                                generator, noise, implementation, check_values, chunk_bytes,
                                                ddp_gradients)
    return (loss, stats) if return_stats else loss


def sharded_see_loss_with_options(embeddings, labels, proxies, num_classes: int, options: SEEOptions, group=None,
                                  generator=None, noise=None, implementation: str = "auto",
                                  check_values: bool = True, chunk_bytes: int | None = None,
                                  ddp_gradients: bool = False):
    """(loss, SEEStats) of sharded_see_loss for settings already built as a SEEOptions."""
    rank, world = collectives.rank_and_world(group)
    error = None
    try:
        shard = class_shard(num_classes, rank, world)
        labels = _check_local_inputs(embeddings, labels, proxies, shard, world, options.expansion, options.loss,
                                     generator, noise, implementation, check_values, ddp_gradients)
        chunk_bytes = chunk_budget(chunk_bytes)
    except (TypeError, ValueError) as refused:
        error = refused
    if world > 1:  # every process raises together, or none does (see agreement.py)
        require_agreement(loss_settings(embeddings, proxies, num_classes, options, implementation, check_values,
                                        chunk_bytes, ddp_gradients, generator, noise), error, group)
    elif error is not None:
        raise error
    device = embeddings.device
    # The plan of the composition: a share of the classes is scored on each process, never in one call.
    plan = dispatch.plan(implementation, device, options.loss, None, chunk_bytes)
    primitives = sharded_primitives(plan, shard, group, chunk_bytes)
    rows = gather_rows(embeddings, group, scale=world if ddp_gradients else 1)
    all_labels = collectives.all_gather_rows(labels, group)
    return composition.see_loss(rows, all_labels, proxies, options.expansion, options.loss, primitives, generator,
                                noise)


def _check_local_inputs(embeddings, labels, proxies, shard: ClassShard, world: int, expansion, settings, generator,
                        noise, implementation, check_values, ddp_gradients) -> torch.Tensor:
    """This process's arguments checked as fused_see_loss checks its own; returns the labels as int64."""
    validation.check_implementation(implementation)
    validation.check_bool(check_values, "check_values")
    validation.check_bool(ddp_gradients, "ddp_gradients")
    dtype = validation.check_see_call(embeddings, labels, proxies, expansion, settings, noise, generator,
                                      world_size=world)
    if proxies.shape[0] != shard.size:
        raise ValueError(
            f"proxies must hold the {shard.size} classes [{shard.offset}, {shard.stop}) of {shard.total} that "
            f"this process holds (see see_cuda.sharded.class_partition), got {proxies.shape[0]} rows")
    labels = validation.index_labels(labels)
    validation.check_call_values(embeddings.device, check_values, rows={"embeddings": embeddings, "proxies": proxies},
                                 labels={"labels": (labels, shard.total)},
                                 noise={} if noise is None else {"noise": noise}, dtype=dtype)
    return labels

