"""The SEE loss with the proxies sharded over processes: check, gather, compose."""
from __future__ import annotations

import torch

from .. import composition, validation
from ..options import SEEOptions, resolve_options
from ..share import chunk_budget
from . import collectives
from .agreement import loss_settings, require_agreement
from .differentiable import gather_rows
from .partition import ClassShard, class_shard
from .primitives import sharded_primitives


def sharded_see_loss(embeddings, labels, proxies, num_classes: int, group=None, n_expansion: int = 16,
                     lam: float = 0.2, mode: str = "fraction", ratio: float = 0.4, threshold: float = 0.0,
                     alpha: float = 32.0, margin: float = 0.1, detach_synthetic: bool = True, generator=None,
                     noise=None, return_stats: bool = False, implementation: str = "auto",
                     options: SEEOptions | None = None, check_values: bool = True, chunk_bytes: int | None = None,
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
        labels = _check_local_inputs(embeddings, labels, proxies, shard, world, options, generator, noise,
                                     implementation, check_values, ddp_gradients)
        chunk_bytes = chunk_budget(chunk_bytes)
    except (TypeError, ValueError) as refused:
        error = refused
    if world > 1:  # every process raises together, or none does (see agreement.py)
        require_agreement(loss_settings(embeddings, proxies, num_classes, options, implementation, check_values,
                                        chunk_bytes, ddp_gradients, generator, noise), error, group)
    elif error is not None:
        raise error
    device = embeddings.device
    primitives = sharded_primitives(implementation, device, shard, group, chunk_bytes)
    rows = gather_rows(embeddings, group, scale=world if ddp_gradients else 1)
    all_labels = collectives.all_gather_rows(labels, group)
    return composition.see_loss(rows, all_labels, proxies, options, primitives, generator, noise)


def _check_local_inputs(embeddings, labels, proxies, shard: ClassShard, world: int, options, generator, noise,
                        implementation, check_values, ddp_gradients) -> torch.Tensor:
    """This process's arguments checked as fused_see_loss checks its own; returns the labels as int64."""
    validation.check_implementation(implementation)
    validation.check_bool(check_values, "check_values")
    validation.check_bool(ddp_gradients, "ddp_gradients")
    dtype = validation.check_loss_inputs(embeddings, labels, proxies)
    if proxies.shape[0] != shard.size:
        raise ValueError(
            f"proxies must hold the {shard.size} classes [{shard.offset}, {shard.stop}) of {shard.total} that "
            f"this process holds (see see_cuda.sharded.class_partition), got {proxies.shape[0]} rows")
    validation.check_alpha_for_dtype(options.alpha, options.margin, dtype)
    B, D = embeddings.shape
    if options.expands:
        validation.check_dim_for_expansion(D, options.n_expansion)
    validation.check_mode_for_device(options.mode, embeddings.device)
    validation.check_noise_shape(noise, world * B, options.n_expansion, D)
    validation.check_same_device({"embeddings": embeddings, "noise": noise})
    validation.check_generator(generator, embeddings.device)
    labels = validation.index_labels(labels)
    if validation.values_are_read(embeddings.device, check_values):
        validation.check_values(rows={"embeddings": embeddings, "proxies": proxies},
                                labels={"labels": (labels, shard.total)},
                                noise={} if noise is None else {"noise": noise}, dtype=dtype)
    return labels

