"""The SEE loss with the proxies sharded over processes: check, gather, compose."""
from __future__ import annotations

import torch

from .. import composition, dispatch, validation
from ..options import DEFAULTS, SEEOptions, resolve_options
from ..share import chunk_budget
from . import collectives
from .differentiable import gather_rows
from .partition import ClassShard, class_shard
from .primitives import sharded_primitives

# The dtypes the agreement compares, by position (an unknown dtype is refused by the local checks).
_DTYPE_CODES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def sharded_see_loss(embeddings, labels, proxies, num_classes: int, group=None,
                     n_expansion: int = DEFAULTS.n_expansion, lam: float = DEFAULTS.lam, mode: str = DEFAULTS.mode,
                     ratio: float = DEFAULTS.ratio, threshold: float = DEFAULTS.threshold,
                     alpha: float = DEFAULTS.alpha, margin: float = DEFAULTS.margin,
                     detach_synthetic: bool = DEFAULTS.detach_synthetic, generator=None, noise=None,
                     return_stats: bool = False, implementation: str = "auto", options: SEEOptions | None = None,
                     check_values: bool = True, chunk_bytes: int | None = None):
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
    see_cuda.share.DEFAULT_CHUNK_BYTES). The other arguments are
    fused_see_loss's. Without a process group it is the loss of one process.
    """
    options = resolve_options(
        options, n_expansion=n_expansion, lam=lam, mode=mode, ratio=ratio, threshold=threshold, alpha=alpha,
        margin=margin, detach_synthetic=detach_synthetic,
    )
    loss, stats = sharded_see_loss_with_options(embeddings, labels, proxies, num_classes, options, group,
                                                generator, noise, implementation, check_values, chunk_bytes)
    return (loss, stats) if return_stats else loss


def sharded_see_loss_with_options(embeddings, labels, proxies, num_classes: int, options: SEEOptions, group=None,
                                  generator=None, noise=None, implementation: str = "auto",
                                  check_values: bool = True, chunk_bytes: int | None = None):
    """(loss, SEEStats) of sharded_see_loss for settings already built as a SEEOptions."""
    rank, world = collectives.rank_and_world(group)
    shard = class_shard(num_classes, rank, world)
    error = None
    try:
        labels = _check_local_inputs(embeddings, labels, proxies, shard, world, options, generator, noise,
                                     implementation, check_values)
        chunk_bytes = chunk_budget(chunk_bytes)
    except (TypeError, ValueError) as refused:
        error = refused
    device = embeddings.device if isinstance(embeddings, torch.Tensor) else torch.device("cpu")
    # Values are read where they are checked: there one all-reduce of a few integers lets every
    # process raise together (one process raising alone would leave the others in the next collective).
    if world > 1 and (error is not None or validation.values_are_read(device, check_values)):
        _agree_across_processes(error, embeddings, proxies, group)
    elif error is not None:
        raise error
    # The plan of the composition: a share of the classes is scored on each process, never in one call.
    plan = dispatch.plan(implementation, device, options.loss, None, chunk_bytes)
    primitives = sharded_primitives(plan, shard, group, chunk_bytes)
    rows = gather_rows(embeddings, group)
    all_labels = collectives.all_gather_rows(labels, group)
    return composition.see_loss(rows, all_labels, proxies, options.expansion, options.loss, primitives, generator,
                                noise)


def _check_local_inputs(embeddings, labels, proxies, shard: ClassShard, world: int, options, generator, noise,
                        implementation, check_values) -> torch.Tensor:
    """This process's arguments checked as fused_see_loss checks its own; returns the labels as int64."""
    validation.check_implementation(implementation)
    validation.check_bool(check_values, "check_values")
    dtype = validation.check_see_call(embeddings, labels, proxies, options.expansion, options.loss, noise, generator,
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


def _agree_across_processes(error, embeddings, proxies, group) -> None:
    """Every process raises if any refused its arguments or if their shapes and dtypes differ."""
    def code(t, dim=None):
        if not isinstance(t, torch.Tensor):
            return -1
        if dim is not None:
            return t.shape[dim] if t.dim() > dim else -1
        return _DTYPE_CODES.index(t.dtype) if t.dtype in _DTYPE_CODES else -1

    facts = [code(embeddings, 0), code(embeddings, 1), code(embeddings), code(proxies)]
    values = [int(error is not None)] + [v for fact in facts for v in (fact, -fact)]
    flags = collectives.all_reduce(torch.tensor(values, dtype=torch.int64, device=collectives.device_of(group)), group,
                                   op=torch.distributed.ReduceOp.MAX).tolist()
    if error is not None:
        raise error
    if flags[0]:
        raise ValueError("the arguments of another process of the group were refused (its error names them); "
                         "no process computed the loss")
    for name, (high, negative_low) in zip(("the number of rows of embeddings", "embeddings' D",
                                           "embeddings' dtype", "proxies' dtype"),
                                          zip(flags[1::2], flags[2::2])):
        if high != -negative_low:
            raise ValueError(f"{name} must be the same on every process of the group")
