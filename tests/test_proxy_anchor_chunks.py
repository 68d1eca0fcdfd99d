"""The Proxy-Anchor op in chunks of classes and in shards of them (docs/method.md §1).

The op forms the cosines of all N rows with a chunk of at most chunk_bytes / (N·itemsize) classes
at a time (at least one), so that its memory is O(N x chunk) for any number of classes; its
proxies may be a shard, the global classes [class_offset, class_offset + C_local) of
total_classes, and it then returns their share of the loss (reference.proxy_anchor_share).
"""
import pytest
import torch

import see_cuda
from see_cuda import ops, reference

from comparisons import UNIT_ROUNDOFF, assert_close_scaled, chunking_bounds, draw, leaf
from conftest import DEVICES, requires_cpu_kernels

RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}  # as test_proxy_anchor.py: the fused op against the reference
LAM, ALPHA, MARGIN = 0.3, 32.0, 0.1


def assert_rows_within(got, want, rows, bound):
    """|got - want| <= bound / |row| entrywise, |row| = sqrt(|v|² + ε) of the rows the gradient is of."""
    norms = torch.sqrt((rows.double() * rows.double()).sum(-1, keepdim=True) + reference.NORM_EPS).cpu()
    assert ((got.double().cpu() - want.double().cpu()).abs() <= bound / norms).all()


def problem(B, m, C, D, seed, dtype, label_classes=None):
    """x (B x D), labels over `label_classes` (default all C), proxies (C x D), synthetic rows (m x D) and labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, label_classes or C, (B,), generator=g)
    synthetic_labels = torch.randint(0, label_classes or C, (m,), generator=g)
    x, proxies, synthetic = draw(B, D, seed=seed + 1), draw(C, D, seed=seed + 2), draw(m, D, seed=seed + 3)
    return x.to(dtype), y, proxies.to(dtype), synthetic.to(dtype), synthetic_labels


def op_share(x, y, proxies, synthetic, synthetic_labels, device, **shard):
    """(loss, dL/dx, dL/dproxies, dL/dsynthetic) of the op on `device`, on the CPU."""
    x, proxies, synthetic = (leaf(t, device) for t in (x, proxies, synthetic))
    loss = ops.proxy_anchor_fused(x, y.to(device), proxies, synthetic, synthetic_labels.to(device), ALPHA, MARGIN,
                                  LAM, synthetic_grad=True, **shard)
    return tuple(t.cpu() for t in (loss, *torch.autograd.grad(loss, (x, proxies, synthetic))))


def reference_share(x, y, proxies, synthetic, synthetic_labels, class_offset, total_classes):
    """The same by the reference, in float64."""
    x, proxies, synthetic = (t.double().requires_grad_() for t in (x, proxies, synthetic))
    loss = (reference.proxy_anchor_share(x, y, proxies, class_offset, total_classes, ALPHA, MARGIN)
            + LAM * reference.proxy_anchor_share(synthetic, synthetic_labels, proxies, class_offset, total_classes,
                                                 ALPHA, MARGIN))
    return (loss, *torch.autograd.grad(loss, (x, proxies, synthetic)))


def assert_chunking_equal(got, want, inputs, dtype, C, shares=1):
    x, proxies, synthetic = inputs
    N, D = x.shape[0] + synthetic.shape[0], x.shape[1]
    loss_bound, rows_bound, proxies_bound = chunking_bounds(ALPHA, LAM, dtype, D, C, N, want[0].item())
    assert abs(got[0].item() - want[0].item()) <= loss_bound + shares * UNIT_ROUNDOFF[dtype] * abs(want[0].item())
    assert_rows_within(got[1], want[1], x, rows_bound)
    assert_rows_within(got[2], want[2], proxies, proxies_bound)
    assert_rows_within(got[3], want[3], synthetic, rows_bound)


# ---------------------------------------------------------------- chunks of classes
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("classes_per_chunk", [1, 3, 17, 40])
def test_chunks_give_the_unchunked_loss(device, dtype, classes_per_chunk):
    """Chunks of 1, 3 (the last one shorter), 17 and all 40 classes, against one chunk of all."""
    x, y, proxies, synthetic, synthetic_labels = problem(30, 12, 41, 16, seed=1, dtype=dtype, label_classes=37)
    itemsize = torch.finfo(dtype).bits // 8
    chunk_bytes = classes_per_chunk * (30 + 12) * itemsize
    inputs = (x, proxies, synthetic)
    whole = op_share(x, y, proxies, synthetic, synthetic_labels, device, chunk_bytes=2**40)
    chunked = op_share(x, y, proxies, synthetic, synthetic_labels, device, chunk_bytes=chunk_bytes)
    assert_chunking_equal(chunked, whole, inputs, dtype, 41)


@pytest.mark.parametrize("device", DEVICES)
def test_a_budget_below_one_class_takes_one_class_per_chunk(device):
    """chunk_bytes = 1 cannot hold one class: one class per chunk, the same computation as a budget of one."""
    x, y, proxies, synthetic, synthetic_labels = problem(9, 4, 6, 8, seed=2, dtype=torch.float64)
    one_byte = op_share(x, y, proxies, synthetic, synthetic_labels, device, chunk_bytes=1)
    one_class = op_share(x, y, proxies, synthetic, synthetic_labels, device, chunk_bytes=13 * 8)
    for a, b in zip(one_byte, one_class):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_one_class_in_chunks_is_the_reference(device, chunk_bytes):
    x, y, proxies, synthetic, synthetic_labels = problem(7, 3, 1, 5, seed=3, dtype=torch.float64)
    got = op_share(x, y, proxies, synthetic, synthetic_labels, device, chunk_bytes=chunk_bytes)
    want = reference_share(x, y, proxies, synthetic, synthetic_labels, 0, 1)
    for mine, truth in zip(got, want):
        assert_close_scaled(mine, truth, RTOL[torch.float64])


@requires_cpu_kernels
@pytest.mark.parametrize("implementation", ["auto", "fused"])
def test_the_public_functions_and_the_module_take_a_budget(implementation):
    """chunk_bytes says how, not what: every public loss gives the default's answer with a budget of one class."""
    x, y, proxies, synthetic, synthetic_labels = problem(20, 6, 12, 10, seed=4, dtype=torch.float64)
    noise = draw(20, 2, 10, seed=50)  # not seed 5: that stream made x, and a draw equal to its source is in the span
    one_class = 1  # below one class: chunks of one
    calls = [
        lambda budget, p: see_cuda.proxy_anchor_loss(x, y, p, implementation=implementation, chunk_bytes=budget),
        lambda budget, p: see_cuda.proxy_anchor_loss_with_synthetic(x, y, p, synthetic, synthetic_labels,
                                                                    implementation=implementation,
                                                                    chunk_bytes=budget),
        lambda budget, p: see_cuda.fused_see_loss(x, y, p, n_expansion=3, noise=noise, implementation=implementation,
                                                  chunk_bytes=budget),
        lambda budget, p: see_cuda.fused_see_loss(x, y, p, n_expansion=3, noise=noise, detach_synthetic=False,
                                                  implementation=implementation, chunk_bytes=budget),
    ]
    N = 20 + round(20 * 0.4) * 3
    for call in calls:
        losses, grads = [], []
        for budget in (None, one_class):
            p = proxies.clone().requires_grad_()
            loss = call(budget, p)
            losses.append(loss)
            grads.append(torch.autograd.grad(loss, p)[0])
        loss_bound, _, proxies_bound = chunking_bounds(ALPHA, 0.2, torch.float64, 10, 12, N, losses[0].item())
        assert abs(losses[1].item() - losses[0].item()) <= loss_bound
        assert_rows_within(grads[1], grads[0], proxies, proxies_bound)
    module = see_cuda.SEEProxyAnchorLoss(12, 10, n_expansion=3, implementation=implementation, chunk_bytes=one_class)
    assert module.chunk_bytes == one_class and torch.isfinite(module(x.float(), y))


@pytest.mark.parametrize("chunk_bytes, error", [(0, ValueError), (-5, ValueError), (1.5, TypeError), (True, TypeError),
                                                ("1MB", TypeError)])
def test_a_budget_that_is_not_a_positive_int_is_refused(chunk_bytes, error):
    x, y, proxies, _, _ = problem(4, 0, 3, 5, seed=6, dtype=torch.float64)
    for call in (lambda: see_cuda.proxy_anchor_loss(x, y, proxies, chunk_bytes=chunk_bytes),
                 lambda: see_cuda.fused_see_loss(x, y, proxies, n_expansion=2, chunk_bytes=chunk_bytes),
                 lambda: see_cuda.SEEProxyAnchorLoss(3, 5, chunk_bytes=chunk_bytes)):
        with pytest.raises(error, match="chunk_bytes"):
            call()


# ---------------------------------------------------------------- shards of classes
def test_reference_shares_add_up_to_the_loss():
    """The statement itself: the shares of a partition are the loss, their gradients its gradients."""
    x, y, proxies, _, _ = problem(25, 0, 9, 6, seed=7, dtype=torch.float64)
    x, proxies = x.requires_grad_(), proxies.requires_grad_()
    full = reference.proxy_anchor_loss(x, y, proxies)
    shares = sum(reference.proxy_anchor_share(x, y, proxies[a:b], a, 9) for a, b in ((0, 4), (4, 4), (4, 9)))
    torch.testing.assert_close(shares, full, rtol=1e-14, atol=0)
    for mine, theirs in zip(torch.autograd.grad(shares, (x, proxies)), torch.autograd.grad(full, (x, proxies))):
        torch.testing.assert_close(mine, theirs, rtol=1e-13, atol=1e-15)


SHARDS = [(0, 5), (5, 5), (5, 13), (13, 20)]  # an empty shard among them


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk_bytes", [None, 1, 200])
def test_shards_are_the_reference_shares_and_add_up(device, dtype, chunk_bytes):
    """Each shard (labels global, rows of other shards its negatives, classes without rows among
    them) is reference.proxy_anchor_share; the shares add up to the whole op's loss and gradients."""
    C = 20
    x, y, proxies, synthetic, synthetic_labels = problem(24, 10, C, 12, seed=8, dtype=dtype, label_classes=C - 3)
    whole = op_share(x, y, proxies, synthetic, synthetic_labels, device)
    rtol = RTOL[dtype]
    sums = [torch.zeros((), dtype=torch.float64), torch.zeros_like(x.double()), torch.zeros_like(synthetic.double())]
    proxy_grads = []
    for first, last in SHARDS:
        got = op_share(x, y, proxies[first:last], synthetic, synthetic_labels, device, class_offset=first,
                       total_classes=C, chunk_bytes=chunk_bytes)
        want = reference_share(x.double(), y, proxies[first:last].double(), synthetic.double(), synthetic_labels,
                               first, C)
        for mine, truth in zip(got, want):
            assert mine.dtype == dtype
            assert_close_scaled(mine, truth, rtol, min_scale=rtol * abs(whole[0].item()))
        sums = [s + g.double() for s, g in zip(sums, (got[0], got[1], got[3]))]
        proxy_grads.append(got[2])
    added = (sums[0], sums[1], torch.cat(proxy_grads), sums[2])
    assert_chunking_equal(added, whole, (x, proxies, synthetic), dtype, C, shares=len(SHARDS))


@pytest.mark.parametrize("device", DEVICES)
def test_labels_of_other_shards_are_negatives_and_labels_beyond_all_classes_nan(device):
    x, y, proxies, synthetic, synthetic_labels = problem(8, 4, 10, 6, seed=9, dtype=torch.float64)
    shard = dict(class_offset=3, total_classes=10)
    y_outside_shard = torch.tensor([0, 9, 1, 8, 8, 2, 0, 7])  # no row of the shard's classes
    finite = op_share(x, y_outside_shard, proxies[3:6], synthetic, synthetic_labels, device, **shard)
    want = reference_share(x, y_outside_shard, proxies[3:6], synthetic, synthetic_labels, 3, 10)
    for mine, truth in zip(finite, want):
        assert torch.isfinite(mine).all()
        assert_close_scaled(mine, truth, RTOL[torch.float64])
    for bad in (10, -1, 2**40):
        for real in (True, False):
            labels = y.clone() if real else synthetic_labels.clone()
            labels[1] = bad
            args = (labels, synthetic_labels) if real else (y, labels)
            for shard_proxies, first in ((proxies[3:6], 3), (proxies[:0], 3), (proxies, 0)):
                outputs = op_share(x, args[0], shard_proxies, synthetic, args[1], device, class_offset=first,
                                   total_classes=10)
                assert torch.isnan(outputs[0])
                for grad in outputs[1:]:
                    assert grad.numel() == 0 or torch.isnan(grad).all()


@pytest.mark.parametrize("device", DEVICES)
def test_a_shard_without_classes_has_no_share(device):
    x, y, proxies, synthetic, synthetic_labels = problem(6, 3, 4, 5, seed=10, dtype=torch.float64)
    loss, gx, gp, gs = op_share(x, y, proxies[:0], synthetic, synthetic_labels, device, class_offset=2,
                                total_classes=4)
    assert loss.item() == 0 and gp.shape == (0, 5)
    assert torch.equal(gx, torch.zeros_like(x)) and torch.equal(gs, torch.zeros_like(synthetic))


@requires_cpu_kernels
@pytest.mark.parametrize("class_offset, total_classes, chunk_bytes, message", [
    (-1, 10, None, "the 3 proxies must be the classes"),
    (8, 10, None, "the 3 proxies must be the classes"),
    (0, 2, None, "the 3 proxies must be the classes"),
    (0, -2, None, "the 3 proxies must be the classes"),
    (1, None, None, "class_offset must be 0 when total_classes is None"),
    (0, None, 0, "chunk_bytes must be >= 1"),
    (0, None, -1, "chunk_bytes must be >= 1"),
])
def test_the_raw_op_refuses_a_shard_outside_the_classes(class_offset, total_classes, chunk_bytes, message):
    x, y, proxies, synthetic, synthetic_labels = problem(5, 0, 3, 4, seed=11, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.see_cuda.proxy_anchor_fused(x, y, proxies, synthetic, synthetic_labels, ALPHA, MARGIN, LAM, False,
                                              False, class_offset, total_classes, chunk_bytes)
