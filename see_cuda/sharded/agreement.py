"""One check that every process of the group called the sharded loss with the same settings.

The sharded loss is correct only if every process computes the same loss: the same
classes and options, the same chunk policy and dtypes, the same number of rows and the
same source of random frames. A process that differs would not fail by itself (each
process's arithmetic is valid on its own); every process would return the same wrong loss.
So each setting is reduced to a 63-bit digest of its value, and one all-reduce (MAX of
the digests and of their negations) tells every process which settings differ; it also
carries a flag for a process whose own checks refused its arguments. On a difference a
second collective gathers the differing values so that every process raises the same
ValueError, naming each setting and its value on every process; nothing is computed and
no process is left waiting in a later collective.
"""
from __future__ import annotations

import dataclasses
import hashlib

import torch
import torch.distributed as dist

from . import collectives

_DIGEST_MASK = 2**63 - 1


def loss_settings(embeddings, proxies, num_classes, options, implementation, check_values, chunk_bytes,
                  ddp_gradients, generator, noise) -> dict:
    """The settings of one sharded loss call that must be the same on every process, by name."""
    def shape(tensor, dim):
        return tensor.shape[dim] if isinstance(tensor, torch.Tensor) and tensor.dim() > dim else None

    def dtype(tensor):
        return str(tensor.dtype) if isinstance(tensor, torch.Tensor) else None

    settings = {
        "the number of rows of embeddings": shape(embeddings, 0),
        "embeddings' D": shape(embeddings, 1),
        "embeddings' dtype": dtype(embeddings),
        "proxies' dtype": dtype(proxies),
        "num_classes": num_classes,
    }
    settings.update({field.name: getattr(options, field.name) for field in dataclasses.fields(options)})
    settings.update({
        "implementation": implementation,
        "check_values": check_values,
        "chunk_bytes": chunk_bytes,
        "ddp_gradients": ddp_gradients,
        # The frames come from the first process's generator, or from `noise`: all or none must pass it.
        "noise (given or None)": "given" if noise is not None else None,
        "generator (given or None)": "given" if generator is not None else None,
        "noise's dtype": dtype(noise),
        "a recorded gradient (the backward's collectives)": torch.is_grad_enabled() and any(
            isinstance(t, torch.Tensor) and t.requires_grad for t in (embeddings, proxies)),
    })
    return settings


def _digest(value) -> int:
    text = f"{type(value).__name__}:{value!r}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & _DIGEST_MASK


def require_agreement(settings: dict, error: Exception | None, group=None) -> None:
    """Raises on every process of `group` if any process's `error` is set (that process raises
    its own) or if any setting differs between processes; returns on every process otherwise."""
    digests = [_digest(value) for value in settings.values()]
    payload = [int(error is not None)] + [v for digest in digests for v in (digest, -digest)]
    reduced = collectives.all_reduce(
        torch.tensor(payload, dtype=torch.int64, device=collectives.device_of(group)), group,
        op=dist.ReduceOp.MAX).tolist()
    if error is not None:
        raise error
    if reduced[0]:
        raise ValueError("the arguments of another process of the group were refused (its error names them); "
                         "no process computed the loss")
    names = list(settings)
    differing = [name for name, high, negative_low in zip(names, reduced[1::2], reduced[2::2])
                 if high != -negative_low]
    if not differing:
        return
    values = [None] * collectives.rank_and_world(group)[1]
    dist.all_gather_object(values, {name: settings[name] for name in differing}, group=group)
    described = "; ".join(
        f"{name}: " + ", ".join(f"{found[name]!r} on process {rank}" for rank, found in enumerate(values))
        for name in differing)
    raise ValueError(f"the sharded loss was called with settings that differ between the processes of the group "
                     f"({described}); every process must pass the same, so no process computed the loss")
