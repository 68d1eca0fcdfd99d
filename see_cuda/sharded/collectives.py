"""The collectives of the sharded loss, through torch.distributed, each one recorded.

Every call goes through the functions here, which add an entry to each active
CommunicationLog (`with record_communication() as log:`): the collective and
the payload, the bytes of the tensor this process passes to it (its own rows
for an all-gather, the whole tensor for an all-reduce or a broadcast). How
many bytes cross the wire for a payload depends on the backend's algorithm
(a ring all-reduce moves about 2(W-1)/W times its payload per process, an
all-gather W-1 times its contribution); the payload is what the caller
controls. On one process (no process group, or a group of one) nothing is
communicated and nothing is recorded.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


def rank_and_world(group=None) -> tuple[int, int]:
    """This process's rank in `group` and the group's size; (0, 1) without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        if group is not None:
            raise ValueError("a process group was given but torch.distributed is not initialised")
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def device_of(group=None) -> torch.device:
    """Where the group's collectives take their tensors: the current CUDA device for NCCL, the CPU otherwise."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@dataclass
class CommunicationLog:
    """The collectives one process made, in order: (name, payload bytes) each."""

    calls: list = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """The payload bytes of every recorded collective."""
        return sum(nbytes for _, nbytes in self.calls)

    def bytes_by_collective(self) -> dict:
        totals: dict = {}
        for name, nbytes in self.calls:
            totals[name] = totals.get(name, 0) + nbytes
        return totals


_ACTIVE_LOGS: list = []


@contextlib.contextmanager
def record_communication():
    """A CommunicationLog of the collectives made through this module inside the block (backward passes too)."""
    log = CommunicationLog()
    _ACTIVE_LOGS.append(log)
    try:
        yield log
    finally:
        _ACTIVE_LOGS.remove(log)


def _record(name: str, tensor: torch.Tensor) -> None:
    for log in _ACTIVE_LOGS:
        log.calls.append((name, tensor.numel() * tensor.element_size()))


def all_reduce(tensor: torch.Tensor, group=None, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """`tensor` reduced over the group in place (and returned)."""
    if rank_and_world(group)[1] > 1:
        _record("all_reduce", tensor)
        dist.all_reduce(tensor, op=op, group=group)
    return tensor


def all_gather_rows(local: torch.Tensor, group=None) -> torch.Tensor:
    """Every process's `local` (equal shapes) concatenated along dim 0 in rank order; no gradient."""
    world = rank_and_world(group)[1]
    if world == 1:
        return local
    local = local.detach().contiguous()
    _record("all_gather", local)
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local, group=group)
    return torch.cat(parts)


def broadcast(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """The group's first rank's `tensor`, in place on every process (and returned)."""
    if rank_and_world(group)[1] > 1:
        _record("broadcast", tensor)
        source = 0 if group is None else dist.get_global_rank(group, 0)
        dist.broadcast(tensor, source, group=group)
    return tensor
