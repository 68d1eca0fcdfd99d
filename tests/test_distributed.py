"""Two gloo processes give the loss and gradients of one process on the concatenated batch.

The convention under test (see_cuda/train/distributed.py): each rank's local
embeddings get exactly their single-process gradient; a network weight's
gradient, SUMMED over ranks, is the single-process gradient; the proxies'
gradient, AVERAGED over ranks, is the single-process gradient.
"""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import see_cuda
from see_cuda.train.distributed import gather, gather_with_grad, reduce_gradients

from conftest import requires_cpu_kernels

WORLD, LOCAL_BATCH, DIM, FEATURES, CLASSES, N_EXPANSION = 2, 6, 12, 10, 5, 4


def problem():
    """Features of the global batch, a shared linear 'network', labels, proxies and fixed noise."""
    generator = torch.Generator().manual_seed(7)
    batch = WORLD * LOCAL_BATCH
    return {
        "features": torch.randn(batch, FEATURES, generator=generator, dtype=torch.float64),
        "weight": torch.randn(FEATURES, DIM, generator=generator, dtype=torch.float64),
        "labels": torch.randint(0, CLASSES, (batch,), generator=generator),
        "proxies": torch.randn(CLASSES, DIM, generator=generator, dtype=torch.float64),
        "noise": torch.randn(batch, N_EXPANSION - 1, DIM, generator=generator, dtype=torch.float64),
    }


def loss_of(embeddings, labels, proxies, noise, implementation):
    return see_cuda.fused_see_loss(embeddings, labels, proxies, n_expansion=N_EXPANSION, ratio=0.5, noise=noise,
                                   implementation=implementation)


def single_process(implementation):
    data = problem()
    weight = data["weight"].clone().requires_grad_()
    proxies = data["proxies"].clone().requires_grad_()
    embeddings = data["features"] @ weight
    embeddings.retain_grad()
    loss = loss_of(embeddings, data["labels"], proxies, data["noise"], implementation)
    loss.backward()
    return loss.detach(), embeddings.grad, weight.grad, proxies.grad


def worker(rank, port, implementation, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        data = problem()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        weight = data["weight"].clone().requires_grad_()
        proxies = data["proxies"].clone().requires_grad_()
        local = data["features"][rows] @ weight
        local.retain_grad()
        embeddings = gather_with_grad(local)
        labels = gather(data["labels"][rows])
        loss = loss_of(embeddings, labels, proxies, data["noise"], implementation)
        loss.backward()
        reduce_gradients([weight], [proxies])
        results[rank] = (loss.detach(), local.grad, weight.grad, proxies.grad)
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("implementation", ["reference", pytest.param("fused", marks=requires_cpu_kernels)])
def test_two_processes_match_one_process(implementation):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(free_port(), implementation, results), nprocs=WORLD, join=True)
        results = dict(results)
    loss, embedding_grad, weight_grad, proxy_grad = single_process(implementation)
    assert embedding_grad.abs().sum() > 0 and proxy_grad.abs().sum() > 0
    for rank in range(WORLD):
        rank_loss, local_grad, rank_weight_grad, rank_proxy_grad = results[rank]
        torch.testing.assert_close(rank_loss, loss, rtol=1e-12, atol=1e-12)
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        torch.testing.assert_close(local_grad, embedding_grad[rows], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(rank_weight_grad, weight_grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(rank_proxy_grad, proxy_grad, rtol=1e-10, atol=1e-12)
