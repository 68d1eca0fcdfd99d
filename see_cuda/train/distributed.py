"""Several processes (torchrun): the network in DistributedDataParallel, the batch's embeddings
gathered through torch.distributed.nn before the loss, BatchNorm over the whole batch.

Gradient convention. Every process computes the loss L of the *whole* gathered batch (the
same value everywhere; with sharded proxies, each its share, summed). Then
  - the gather's backward (torch.distributed.nn's all_gather: a reduce-scatter) sums over
    the W processes the gradient each formed for a process's rows: W·dL/dx, as each formed
    the whole dL/dX; the sharded loss, built with ddp_gradients=True, gives its rows the
    same W·dL/dx;
  - BatchNorm layers normalise by the statistics of the whole batch (GatheredBatchNorm),
    whose backward sums the statistics' gradients over the processes;
  - so each process's network gradient is W times the share of its rows, and DDP's
    average over the processes is the gradient of one process on the whole batch;
  - replicated proxies see every row, so each process already holds the full dL/dP: it is
    AVERAGED over the processes, which changes nothing but float rounding and keeps the
    replicas identical. Sharded proxies get their complete gradient where they are.
The step therefore equals one process's on the concatenated batch (tests/test_distributed.py
checks the first step's loss and gradients of the CLI's network, both ways).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

from .batch_norm import gather_batch_norm


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def init_from_environment(device: str) -> bool:
    """Joins the process group when started by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return True


def distribute_network(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module to train with: `model` itself on one process; otherwise `model` with its
    BatchNorm layers replaced in place by GatheredBatchNorm, in DistributedDataParallel (which
    broadcasts the first process's weights and buffers). Save and evaluate `model`, not this."""
    if not is_distributed() or rank_and_world()[1] == 1:
        return model
    gather_batch_norm(model)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Every process's `local` rows concatenated in rank order; the backward returns to this
    process's rows the sum over processes of their gradient (see the module docstring)."""
    if not is_distributed():
        return local
    return torch.cat(dist_nn.all_gather(local))


def gather(local: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return local
    parts = [torch.empty_like(local) for _ in range(rank_and_world()[1])]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)


def average_gradients(params) -> None:
    """Replicated proxies' gradients averaged over processes (see the module docstring)."""
    if not is_distributed():
        return
    world = rank_and_world()[1]
    for param in params:
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(world)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's weights and buffers everywhere, so replicas start identical."""
    if is_distributed():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()
