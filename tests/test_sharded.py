"""Proxies sharded over 2 and 4 gloo processes give the loss and gradients of one process holding them all.

Each spawned process holds its classes' proxies (class_partition) and its
rows of the global batch; the single-process loss is fused_see_loss on the
concatenated rows and all proxies. Compared: the loss and statistics on every
process, each process's rows' gradient, and each shard's gradient, in float64.
"""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import see_cuda
from see_cuda.sharded import (
    ShardedSEEProxyAnchorLoss,
    class_partition,
    class_shard,
    record_communication,
    sharded_see_loss,
)
from see_cuda.sharded.proxies import initial_proxies

from comparisons import assert_close_scaled

ROWS, DIM, CLASSES, N_EXPANSION = 12, 12, 7, 4  # C = 7: no world size here divides it
# (name, settings, labels drawn from [0, label_high), noise given?)
CASES = [
    ("pa", dict(mode="none"), CLASSES, False),
    ("pa, positives in the first shard only", dict(mode="none"), 3, False),
    ("see fraction", dict(ratio=0.5), CLASSES, False),
    ("see fraction, synthetic not detached", dict(ratio=0.5, detach_synthetic=False), CLASSES, False),
    ("see fraction, positives in the first shard only", dict(ratio=0.5), 3, True),
    ("see threshold", dict(mode="threshold", threshold=0.0), CLASSES, True),
    ("see threshold, not detached, positives in the first shard only",
     dict(mode="threshold", threshold=0.0, detach_synthetic=False), 3, True),
]
# The sharded sums regroup the single process's terms: each output is a sum of
# fewer than 100 terms (rows x classes, plus one per process), so the two
# differ by at most γ_100 ≈ 1.1e-14 times the sum of the terms' magnitudes,
# within 100 times the largest entry here: 1e-11 of it leaves room. "auto"
# runs the compiled expansion on one side and the one-call kernel on the
# other, which agree with the reference to 1e-10 in float64 (test_see_loss).
RTOL = {"reference": 1e-11, "auto": 1e-10}


def case_data(index, label_high):
    generator = torch.Generator().manual_seed(100 + index)
    return {
        "embeddings": torch.randn(ROWS, DIM, generator=generator, dtype=torch.float64),
        "labels": torch.randint(0, label_high, (ROWS,), generator=generator),
        "proxies": torch.randn(CLASSES, DIM, generator=generator, dtype=torch.float64),
        "noise": torch.randn(ROWS, N_EXPANSION - 1, DIM, generator=generator, dtype=torch.float64),
    }


def loss_seed(index):
    return 1000 + index


def single_process(index, settings, label_high, given_noise, implementation):
    data = case_data(index, label_high)
    embeddings = data["embeddings"].clone().requires_grad_()
    proxies = data["proxies"].clone().requires_grad_()
    loss, stats = see_cuda.fused_see_loss(
        embeddings, data["labels"], proxies, n_expansion=N_EXPANSION, generator=torch.Generator().manual_seed(
            loss_seed(index)), noise=data["noise"] if given_noise else None, return_stats=True,
        implementation=implementation, **settings)
    loss.backward()
    return loss.detach(), stats, embeddings.grad, proxies.grad


def sharded_case(index, settings, label_high, given_noise, implementation, rank, world):
    data = case_data(index, label_high)
    rows = slice(rank * ROWS // world, (rank + 1) * ROWS // world)
    shard = class_shard(CLASSES, rank, world)
    embeddings = data["embeddings"][rows].clone().requires_grad_()
    proxies = data["proxies"][shard.offset:shard.stop].clone().requires_grad_()
    # Only the first process's generator seeds the frames: the others start elsewhere on purpose.
    generator = torch.Generator().manual_seed(loss_seed(index) + 7919 * rank)
    loss, stats = sharded_see_loss(
        embeddings, data["labels"][rows], proxies, CLASSES, n_expansion=N_EXPANSION, generator=generator,
        noise=data["noise"] if given_noise else None, return_stats=True, implementation=implementation,
        chunk_bytes=8 * ROWS * 2,  # two classes per chunk at most: the chunked share is exercised too
        **settings)
    loss.backward()
    return loss.detach(), stats, embeddings.grad, proxies.grad


def module_case(rank, world, implementation):
    """The module: its shard is its rows of one initial matrix, and it trains like the replicated module."""
    torch.manual_seed(5)  # every process alike: the shards must still differ
    loss_fn = ShardedSEEProxyAnchorLoss(CLASSES, DIM, n_expansion=N_EXPANSION, init_seed=3,
                                        generator=torch.Generator().manual_seed(11 + rank),
                                        implementation=implementation).double()
    loss_fn.step_epoch(20)
    data = case_data(0, CLASSES)
    rows = slice(rank * ROWS // world, (rank + 1) * ROWS // world)
    embeddings = data["embeddings"][rows].clone().requires_grad_()
    loss = loss_fn(embeddings, data["labels"][rows])
    loss.backward()
    return loss.detach(), loss_fn.last_stats, embeddings.grad, loss_fn.proxies.grad, loss_fn.proxies.detach()


def communication_per_step(rank, world, num_classes):
    """The collectives of one SEE step (forward and backward) with `num_classes` classes."""
    shard = class_shard(num_classes, rank, world)
    generator = torch.Generator().manual_seed(rank)
    embeddings = torch.randn(ROWS // world, DIM, dtype=torch.float64, generator=generator, requires_grad=True)
    labels = torch.randint(0, num_classes, (ROWS // world,), generator=generator)
    proxies = torch.randn(shard.size, DIM, dtype=torch.float64, generator=generator, requires_grad=True)
    with record_communication() as log:
        sharded_see_loss(embeddings, labels, proxies, num_classes, n_expansion=N_EXPANSION, ratio=0.5,
                         generator=generator, implementation="reference").backward()
    return log.calls


def refusals(rank, world):
    """What every process raises when one process's arguments are refused."""
    found = {}
    embeddings = torch.randn(ROWS // world, DIM, dtype=torch.float64)
    proxies = torch.randn(class_shard(CLASSES, rank, world).size, DIM, dtype=torch.float64)
    labels = torch.zeros(ROWS // world, dtype=torch.int64)
    bad_labels = labels.clone().fill_(CLASSES if rank == 1 else 0)
    bad_rows = embeddings[:-1] if rank == 1 else embeddings
    for name, args in (("label", (embeddings, bad_labels)), ("rows", (bad_rows, labels[:bad_rows.shape[0]]))):
        try:
            sharded_see_loss(*args, proxies, CLASSES, n_expansion=N_EXPANSION, implementation="reference")
            found[name] = None
        except ValueError as error:
            found[name] = str(error)
    # A state of another process's classes is refused before anything is loaded.
    loss_fn = ShardedSEEProxyAnchorLoss(CLASSES, DIM, n_expansion=N_EXPANSION, init_seed=1)
    states = [None] * world
    dist.all_gather_object(states, loss_fn.state_dict())
    before = loss_fn.proxies.detach().clone()
    try:
        loss_fn.load_state_dict(states[(rank + 1) % world])
        found["state"] = None
    except ValueError as error:
        found["state"] = str(error)
    found["proxies kept"] = torch.equal(loss_fn.proxies.detach(), before)
    loss_fn.load_state_dict(states[rank])
    found["settings"] = differing_settings(rank, world)
    return found


# Process 1 alone passes another value: (setting, sharded_see_loss's keyword arguments on process 1).
DIFFERING = {
    "num_classes": {"num_classes": CLASSES + 1},  # e.g. C counted from the labels a process holds
    "lam": {"lam": 0.3},
    "chunk_bytes": {"chunk_bytes": 64},
    "noise (given or None)": {"noise": torch.randn(ROWS, N_EXPANSION - 1, DIM, dtype=torch.float64)},
    "implementation": {"implementation": "auto"},
    "ddp_gradients": {"ddp_gradients": True},
}


def differing_settings(rank, world):
    """What every process raises when process 1's settings differ from the others'."""
    found = {}
    generator = torch.Generator().manual_seed(rank)
    embeddings = torch.randn(ROWS // world, DIM, dtype=torch.float64, generator=generator)
    labels = torch.zeros(ROWS // world, dtype=torch.int64)
    for name, change in DIFFERING.items():
        settings = {"num_classes": CLASSES, "implementation": "reference", **(change if rank == 1 else {})}
        proxies = torch.randn(class_shard(settings["num_classes"], rank, world).size, DIM, dtype=torch.float64)
        try:
            sharded_see_loss(embeddings, labels, proxies, n_expansion=N_EXPANSION, **settings)
            found[name] = None
        except ValueError as error:
            found[name] = str(error)
    return found


def worker(rank, world, init_file, implementations, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        found = {implementation: {
            "cases": [sharded_case(i, *case[1:], implementation, rank, world) for i, case in enumerate(CASES)],
            "module": module_case(rank, world, implementation)} for implementation in implementations}
        found["communication"] = {C: communication_per_step(rank, world, C) for C in (CLASSES, 100 * CLASSES)}
        found["refusals"] = refusals(rank, world)
        results[rank] = found
    finally:
        dist.destroy_process_group()


def run_processes(world, implementations, tmp_path):
    """One group of processes for every check (starting processes is most of the time)."""
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(world, str(tmp_path / "rendezvous"), implementations, results), nprocs=world,
                 join=True)
        return dict(results)


def assert_matches(found, expected, rank, world, implementation):
    loss, stats, rows_grad, shard_grad = found[:4]
    expected_loss, expected_stats, embeddings_grad, proxies_grad = expected
    shard = class_shard(CLASSES, rank, world)
    rows = slice(rank * ROWS // world, (rank + 1) * ROWS // world)
    rtol = RTOL[implementation]
    assert_close_scaled(loss, expected_loss, rtol)
    assert (stats.num_expanded, stats.num_synthetic) == (expected_stats.num_expanded, expected_stats.num_synthetic)
    assert_close_scaled(stats.mean_positive_cosine, expected_stats.mean_positive_cosine, rtol)
    # Scaled by the whole gradient's largest entry: a shard or a process's rows may hold only small ones.
    assert_close_scaled(rows_grad, embeddings_grad[rows], rtol, min_scale=embeddings_grad.abs().max().item())
    assert_close_scaled(shard_grad, proxies_grad[shard.offset:shard.stop], rtol,
                        min_scale=proxies_grad.abs().max().item())


# "auto" is the reference where the CPU kernels are not built: then it is not run twice.
IMPLEMENTATIONS = ("reference", "auto") if see_cuda.backends()["cpu"] else ("reference",)


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_loss_and_gradients_match_one_process(world, tmp_path):
    results = run_processes(world, IMPLEMENTATIONS, tmp_path)
    for implementation in IMPLEMENTATIONS:
        for index, (name, *case) in enumerate(CASES):
            expected = single_process(index, *case, implementation)
            assert expected[2].abs().sum() > 0 and expected[3].abs().sum() > 0, name
            for rank in range(world):
                assert_matches(results[rank][implementation]["cases"][index], expected, rank, world, implementation)
        check_module(results, world, implementation)
    check_communication(results, world)
    check_refusals(results, world)


def check_module(results, world, implementation):
    full = initial_proxies(class_shard(CLASSES, 0, 1), DIM, 3)
    shards = [results[rank][implementation]["module"][4] for rank in range(world)]
    torch.testing.assert_close(torch.cat(shards), full.double(), rtol=0, atol=0)
    reference_fn = see_cuda.SEEProxyAnchorLoss(CLASSES, DIM, n_expansion=N_EXPANSION, implementation=implementation,
                                               generator=torch.Generator().manual_seed(11))
    reference_fn.step_epoch(20)
    with torch.no_grad():
        reference_fn.proxies.copy_(full.double())
    reference_fn.double()
    data = case_data(0, CLASSES)
    embeddings = data["embeddings"].clone().requires_grad_()
    loss = reference_fn(embeddings, data["labels"])
    loss.backward()
    expected = (loss.detach(), reference_fn.last_stats, embeddings.grad, reference_fn.proxies.grad)
    for rank in range(world):
        assert_matches(results[rank][implementation]["module"], expected, rank, world, implementation)


def check_communication(results, world):
    rows, itemsize = ROWS, 8
    expected = [
        # The agreement: a flag and the digests of 21 settings, each as (max, -min).
        ("all_reduce", (1 + 2 * 21) * 8),
        ("all_gather", rows // world * DIM * itemsize),  # this process's rows
        ("all_gather", rows // world * 8),  # their labels
        ("all_reduce", rows * DIM * itemsize),  # each row's axis, from the process owning its class
        ("broadcast", 8),  # the seed of the random frames
        ("all_reduce", itemsize),  # the loss
        ("all_reduce", rows * DIM * itemsize),  # the backward: dL/drows summed over the processes
    ]
    for rank in range(world):
        few, many = (results[rank]["communication"][C] for C in (CLASSES, 100 * CLASSES))
        assert few == many == expected


def check_refusals(results, world):
    # Process 1 passed the bad label and one row too few: it names the argument, the others point at it.
    assert "labels" in results[1]["refusals"]["label"]
    for rank in range(world):
        if rank != 1:
            assert "another process" in results[rank]["refusals"]["label"]
        assert "number of rows" in results[rank]["refusals"]["rows"]
        assert f"process {(rank + 1) % world} of {world}" in results[rank]["refusals"]["state"]
        assert results[rank]["refusals"]["proxies kept"]
    # A setting that differs between processes: the same error on every process, naming it and its values.
    for name in DIFFERING:
        messages = {results[rank]["refusals"]["settings"][name] for rank in range(world)}
        assert len(messages) == 1, name
        message = messages.pop()
        assert message is not None and f"{name}: " in message and "on process 1" in message, (name, message)


# ---------------------------------------------------------------- one process: no process group
def test_class_partition_is_contiguous_balanced_and_complete():
    for num_classes in range(1, 40):
        for world in range(1, num_classes + 1):
            shards = class_partition(num_classes, world)
            assert [s.offset for s in shards] == [0] + [s.stop for s in shards[:-1]]
            assert shards[-1].stop == num_classes and all(s.total == num_classes for s in shards)
            sizes = [s.size for s in shards]
            assert sorted(sizes, reverse=True) == sizes and sizes[0] - sizes[-1] <= 1 and sizes[-1] >= 1


def test_class_partition_refuses_fewer_classes_than_processes():
    with pytest.raises(ValueError, match="num_classes"):
        class_partition(3, 4)
    with pytest.raises(ValueError, match="rank"):
        class_shard(8, 4, 4)


def test_initial_proxies_are_rows_of_one_matrix_whatever_the_world_size():
    num_classes = 2500  # several blocks of rows, some shards across a block's edge
    full = initial_proxies(class_shard(num_classes, 0, 1), 8, seed=9)
    assert abs(full.std().item() - (2.0 / num_classes) ** 0.5) < 0.05 * (2.0 / num_classes) ** 0.5
    for world in (2, 3, 7):
        parts = [initial_proxies(shard, 8, seed=9) for shard in class_partition(num_classes, world)]
        torch.testing.assert_close(torch.cat(parts), full, rtol=0, atol=0)
    assert not torch.equal(initial_proxies(class_shard(num_classes, 0, 1), 8, seed=10), full)


def test_one_process_module_is_the_replicated_module():
    sharded = ShardedSEEProxyAnchorLoss(CLASSES, DIM, n_expansion=N_EXPANSION, init_seed=4,
                                        generator=torch.Generator().manual_seed(2), implementation="reference").double()
    replicated = see_cuda.SEEProxyAnchorLoss(CLASSES, DIM, n_expansion=N_EXPANSION, implementation="reference",
                                             generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        replicated.proxies.copy_(sharded.proxies)
    data = case_data(1, CLASSES)
    grads = []
    for loss_fn in (sharded, replicated):
        embeddings = data["embeddings"].clone().requires_grad_()
        loss_fn(embeddings, data["labels"]).backward()
        grads.append((embeddings.grad, loss_fn.proxies.grad))
    for mine, theirs in zip(*grads):
        assert_close_scaled(mine, theirs, 1e-11)
    state = sharded.state_dict()
    other = ShardedSEEProxyAnchorLoss(CLASSES + 1, DIM, n_expansion=N_EXPANSION, init_seed=4)
    with pytest.raises(ValueError, match="classes"):
        other.load_state_dict(state, strict=False)
    same = ShardedSEEProxyAnchorLoss(CLASSES, DIM, n_expansion=N_EXPANSION, init_seed=0,
                                     generator=torch.Generator().manual_seed(0)).double()
    same.load_state_dict(state)
    assert torch.equal(same.proxies, sharded.proxies) and torch.equal(same.generator.get_state(),
                                                                      sharded.generator.get_state())


def test_fused_share_in_one_process_is_the_fused_loss():
    data = case_data(0, CLASSES)
    call = dict(n_expansion=N_EXPANSION, implementation="fused", generator=torch.Generator().manual_seed(1))
    if not see_cuda.backends()["cpu"]:
        pytest.skip("no CPU kernels in this build")
    got = sharded_see_loss(data["embeddings"], data["labels"], data["proxies"], CLASSES, **call)
    call["generator"] = torch.Generator().manual_seed(1)
    expected = see_cuda.fused_see_loss(data["embeddings"], data["labels"], data["proxies"], **call)
    assert_close_scaled(got, expected, 1e-10)


def test_chunked_share_is_the_share():
    from see_cuda import ProxyAnchorSettings
    from see_cuda.share import reference_share

    data = case_data(2, CLASSES)
    synthetic = torch.randn(20, DIM, dtype=torch.float64, requires_grad=True)
    synthetic_labels = torch.randint(0, CLASSES, (20,))
    found = []
    for chunk_bytes in (None, 1, 8 * 32 * 3):  # one chunk; one class per chunk; three per chunk
        x = data["embeddings"].clone().requires_grad_()
        proxies = data["proxies"][2:].clone().requires_grad_()
        share = reference_share(x, data["labels"], proxies, synthetic, synthetic_labels, ProxyAnchorSettings(), 0.3,
                                class_offset=2, total_classes=CLASSES, chunk_bytes=chunk_bytes)
        found.append((share,) + torch.autograd.grad(share, (x, proxies, synthetic)))
    for chunked in found[1:]:
        for mine, theirs in zip(chunked, found[0]):
            assert_close_scaled(mine, theirs, 1e-12)
