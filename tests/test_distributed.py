"""Two gloo processes take the first step of one process on the whole batch, with the CLI's
network (BatchNorm included) and loss, proxies replicated or sharded (Proxy-Anchor; and ArcFace,
with and without SEE, its class vectors sharded).

The convention under test (see_cuda/train/distributed.py): the network in
DistributedDataParallel, the embeddings gathered through torch.distributed.nn, BatchNorm over
the gathered batch. Each process's network gradient, BatchNorm statistics, loss and proxies'
gradient (its shard, when sharded) are those of one process on the concatenated batch.
"""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from see_cuda.sharded import class_shard
from see_cuda.train import TrainConfig
from see_cuda.train.distributed import average_gradients, distribute_network
from see_cuda.train.loop import step_loss
from see_cuda.train.loss import build_loss
from see_cuda.train.model import build_model

WORLD, LOCAL_BATCH, IMAGE, CLASSES = 2, 6, 16, 5
CASES = [("pa", False, "proxy-anchor"), ("see", False, "proxy-anchor"), ("pa", True, "proxy-anchor"),
         ("see", True, "proxy-anchor"), ("pa", True, "arcface"), ("see", True, "arcface")]


def config(loss, sharded, base_loss):
    return TrainConfig(loss=loss, shard_proxies=sharded, base_loss=base_loss, embedding_size=12, cnn_width=4,
                       n_expansion=4, seed=3)


def class_vector_grad(loss_fn):
    """The C_r x D gradient of the module's class vectors, from either layout (PML's W is D x C_r)."""
    return loss_fn.W.grad.t() if hasattr(loss_fn, "W") else loss_fn.proxies.grad


def batch():
    generator = torch.Generator().manual_seed(11)
    images = torch.rand(WORLD * LOCAL_BATCH, 1, IMAGE, IMAGE, generator=generator, dtype=torch.float64)
    return images, torch.arange(WORLD * LOCAL_BATCH) % CLASSES


def first_step(loss, sharded, base_loss, rows):
    """The first step's loss, network gradients, BatchNorm buffers and proxies' gradient on `rows`."""
    settings = config(loss, sharded, base_loss)
    torch.manual_seed(settings.seed)
    model = build_model("small_cnn", settings.embedding_size, 1, settings.cnn_width).double()
    loss_fn = build_loss(settings, CLASSES).double()
    network = distribute_network(model, torch.device("cpu"))
    images, labels = batch()
    value = step_loss(network, loss_fn, images[rows], labels[rows], "none", torch.device("cpu"))
    value.backward()
    if not sharded:
        average_gradients(loss_fn.parameters())
    return {"loss": value.detach(), "grads": {name: p.grad for name, p in model.named_parameters()},
            "buffers": {name: b.clone() for name, b in model.named_buffers()}, "proxies": class_vector_grad(loss_fn)}


def worker(rank, port, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        results[rank] = {case: first_step(*case, rows) for case in CASES}
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes():
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(free_port(), results), nprocs=WORLD, join=True)
        return dict(results)


@pytest.mark.parametrize("case", CASES, ids=[f"{b}-{loss}-{'sharded' if s else 'replicated'}" for loss, s, b in CASES])
def test_first_step_of_two_processes_is_one_process(two_processes, case):
    one = first_step(*case, slice(None))
    assert any(name.endswith("running_mean") for name in one["buffers"])  # the network has BatchNorm
    for rank in range(WORLD):
        got = two_processes[rank][case]
        torch.testing.assert_close(got["loss"], one["loss"], rtol=1e-12, atol=0)
        assert got["grads"].keys() == one["grads"].keys()
        for name, grad in one["grads"].items():
            assert grad.abs().sum() > 0, name
            torch.testing.assert_close(got["grads"][name], grad, rtol=1e-9, atol=1e-12, msg=name)
        for name, buffer in one["buffers"].items():
            torch.testing.assert_close(got["buffers"][name], buffer, rtol=1e-12, atol=1e-14, msg=name)
        shard = class_shard(CLASSES, rank, WORLD) if case[1] else class_shard(CLASSES, 0, 1)
        torch.testing.assert_close(got["proxies"], one["proxies"][shard.offset:shard.stop], rtol=1e-9, atol=1e-12)
