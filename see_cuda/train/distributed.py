"""Several processes (torchrun): the batch's embeddings are gathered before the loss.

Gradient convention. Every rank computes the loss L of the *whole* gathered
batch (the same value everywhere). A rank's own rows keep their autograd graph,
the other ranks' rows are constants, so on each rank
  - the embeddings of its local rows get exactly dL/dx, as on one process;
  - the network's gradient holds only the local rows' share of dL/dθ, so the
    shares are SUMMED over ranks (DDP would average them: it needs the loss
    multiplied by the world size to give the same step);
  - the proxies see every row, so each rank already holds the full dL/dP; it is
    AVERAGED over ranks, which changes nothing but float rounding and keeps the
    replicas identical.
The result is the gradient of one process on the concatenated batch.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


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


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Every rank's `local` rows concatenated in rank order; gradients reach this rank's rows."""
    if not is_distributed():
        return local
    rank, world = rank_and_world()
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local.detach().contiguous())
    parts[rank] = local  # all_gather carries no gradient: put the live tensor back in its slot
    return torch.cat(parts)


def gather(local: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return local
    parts = [torch.empty_like(local) for _ in range(rank_and_world()[1])]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)


def reduce_gradients(network_params, proxy_params) -> None:
    """Network gradients summed, proxy gradients averaged (see the module docstring)."""
    if not is_distributed():
        return
    world = rank_and_world()[1]
    for param in network_params:
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
    for param in proxy_params:
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
