"""The softmax family with its class vectors sharded over 2 and 3 gloo processes equals one process (float64).

C = 7 classes: neither world size divides it. Each spawned process holds its
classes' vectors and its rows of the global batch; the single process is
softmax_family_see_loss on all rows and all classes.
"""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import see_cuda
from see_cuda.sharded import class_shard, record_communication, sharded_softmax_family_loss

from comparisons import assert_close_scaled

ROWS, DIM, CLASSES, N_EXPANSION = 12, 8, 7, 3
SETTINGS = [see_cuda.ProxyNCASettings(1.5), see_cuda.NormalizedSoftmaxSettings(0.1),
            see_cuda.CosFaceSettings(0.2, 30.0), see_cuda.ArcFaceSettings(20.0, 30.0)]
EXPANSIONS = [None, see_cuda.SphericalExpansion(n_expansion=N_EXPANSION, lam=0.4, ratio=0.5),
              see_cuda.SphericalExpansion(n_expansion=N_EXPANSION, lam=0.4, ratio=0.5, detach_synthetic=False)]
CASES = [(s, e) for s in SETTINGS for e in EXPANSIONS]
# The sharded sums regroup the single process's terms (a merge of per-shard sums, an all-reduce of the
# rows' gradients): sums of fewer than 100 terms, within γ_100 ≈ 1.1e-14 of their magnitudes.
RTOL = 1e-11
IMPLEMENTATIONS = ("reference", "auto") if see_cuda.backends()["cpu"] else ("reference",)


def data(index):
    g = torch.Generator().manual_seed(200 + index)
    return (torch.randn(ROWS, DIM, generator=g, dtype=torch.float64), torch.randint(0, CLASSES, (ROWS,), generator=g),
            torch.randn(DIM, CLASSES, generator=g, dtype=torch.float64))


def single_process(index, settings, expansion, implementation):
    x, y, W = data(index)
    x, W = x.clone().requires_grad_(), W.clone().requires_grad_()
    loss, _ = see_cuda.softmax_family_see_loss(x, y, W.t(), settings, expansion=expansion,
                                               implementation=implementation,
                                               generator=torch.Generator().manual_seed(index))
    loss.backward()
    return loss.detach(), x.grad, W.grad


def sharded(index, settings, expansion, implementation, rank, world):
    x, y, W = data(index)
    rows = slice(rank * ROWS // world, (rank + 1) * ROWS // world)
    shard = class_shard(CLASSES, rank, world)
    x_local = x[rows].clone().requires_grad_()
    W_local = W[:, shard.offset:shard.stop].clone().requires_grad_()
    loss = sharded_softmax_family_loss(x_local, y[rows], W_local.t(), CLASSES, settings, expansion=expansion,
                                       implementation=implementation, chunk_bytes=8 * 2 * ROWS,
                                       generator=torch.Generator().manual_seed(index + 7919 * rank))
    loss.backward()
    return loss.detach(), x_local.grad, W_local.grad


def communication(rank, world, num_classes):
    shard = class_shard(num_classes, rank, world)
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(ROWS // world, DIM, dtype=torch.float64, generator=g, requires_grad=True)
    classes = torch.randn(shard.size, DIM, dtype=torch.float64, generator=g, requires_grad=True)
    with record_communication() as log:
        sharded_softmax_family_loss(x, torch.randint(0, num_classes, (ROWS // world,), generator=g), classes,
                                    num_classes, see_cuda.ArcFaceSettings(), expansion=EXPANSIONS[1],
                                    implementation="reference").backward()
    return log.calls


def worker(rank, world, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        found = {impl: [sharded(i, *case, impl, rank, world) for i, case in enumerate(CASES)]
                 for impl in IMPLEMENTATIONS}
        found["communication"] = [communication(rank, world, C) for C in (CLASSES, 100 * CLASSES)]
        results[rank] = found
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_softmax_family_equals_one_process(world, tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(world, str(tmp_path / "rendezvous"), results), nprocs=world, join=True)
        results = dict(results)
    for implementation in IMPLEMENTATIONS:
        for index, case in enumerate(CASES):
            loss, x_grad, W_grad = single_process(index, *case, implementation)
            for rank in range(world):
                shard = class_shard(CLASSES, rank, world)
                rows = slice(rank * ROWS // world, (rank + 1) * ROWS // world)
                got_loss, got_x, got_W = results[rank][implementation][index]
                assert_close_scaled(got_loss, loss, RTOL)
                assert_close_scaled(got_x, x_grad[rows], RTOL, min_scale=x_grad.abs().max().item())
                assert_close_scaled(got_W, W_grad[:, shard.offset:shard.stop], RTOL,
                                    min_scale=W_grad.abs().max().item())
    for rank in range(world):
        small, large = results[rank]["communication"]
        assert small == large  # the same collectives and payloads at 7 and 700 classes


def test_the_module_refuses_a_state_of_another_layout_and_equals_the_function():
    from see_cuda.sharded import ShardedSoftmaxFamilyLoss

    loss_fn = ShardedSoftmaxFamilyLoss(5, 4, see_cuda.CosFaceSettings(), init_seed=1).double()
    other = ShardedSoftmaxFamilyLoss(6, 4, see_cuda.CosFaceSettings(), init_seed=1).double()
    with pytest.raises(ValueError, match=r"classes \[0, 5\) of 5"):
        other.load_state_dict(loss_fn.state_dict())
    embeddings, labels = torch.randn(6, 4, dtype=torch.float64), torch.arange(6) % 5
    expected = sharded_softmax_family_loss(embeddings, labels, loss_fn.W.t(), 5, see_cuda.CosFaceSettings())
    torch.testing.assert_close(loss_fn(embeddings, labels), expected, rtol=0, atol=0)
