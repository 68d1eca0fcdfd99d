"""reference.proxy_anchor_share: the shares of a partition of the classes sum to the loss, gradients too."""
import pytest
import torch

from see_cuda import ProxyAnchorSettings, fused, reference
from see_cuda.sharded import class_partition

from comparisons import assert_close_scaled, draw
from conftest import requires_cpu_kernels


def problem(B=10, D=6, C=9, label_high=9, seed=0):
    x = draw(B, D, seed=seed).requires_grad_()
    proxies = draw(C, D, seed=seed + 1).requires_grad_()
    labels = torch.randint(0, label_high, (B,), generator=torch.Generator().manual_seed(seed + 2))
    return x, labels, proxies


@pytest.mark.parametrize("label_high", [9, 2])  # every class may have positives; only the first two do
@pytest.mark.parametrize("world", [1, 2, 4, 9])
def test_shares_of_a_partition_sum_to_the_loss(world, label_high):
    x, labels, proxies = problem(label_high=label_high)
    loss = reference.proxy_anchor_loss(x, labels, proxies)
    grad_x, grad_proxies = torch.autograd.grad(loss, (x, proxies))
    shares = [reference.proxy_anchor_share(x, labels, proxies[s.offset:s.stop], s.offset, s.total)
              for s in class_partition(proxies.shape[0], world)]
    total = sum(shares)
    # The shares regroup the loss's 2C terms: a few ulp of their sum, which the loss bounds (every term >= 0).
    assert_close_scaled(total, loss, 1e-14)
    share_grad_x, share_grad_proxies = torch.autograd.grad(total, (x, proxies))
    assert_close_scaled(share_grad_x, grad_x, 1e-13)
    assert_close_scaled(share_grad_proxies, grad_proxies, 1e-13)


def test_rows_of_other_classes_are_negatives_of_every_local_proxy():
    x, labels, proxies = problem(label_high=3)
    local = proxies[5:]  # no row's class is local: the share is negative terms only, weighted 1/C
    share = reference.proxy_anchor_share(x, labels, local, 5, 9)
    s = reference.l2_normalize(x) @ reference.l2_normalize(local).t()
    lse = torch.logsumexp(32.0 * (s + 0.1), dim=0)
    negative = torch.logaddexp(torch.zeros_like(lse), lse) / 9  # log(1 + Σ exp), exactly
    assert_close_scaled(share, negative.sum(), 1e-14)


@pytest.mark.parametrize("bad_label", [-1, 9])
def test_a_label_outside_all_classes_makes_the_share_and_its_gradients_nan(bad_label):
    x, labels, proxies = problem()
    labels[3] = bad_label
    share = reference.proxy_anchor_share(x, labels, proxies[:4], 0, 9)
    grad_x, grad_proxies = torch.autograd.grad(share, (x, proxies))
    assert share.isnan() and grad_x.isnan().all() and grad_proxies[:4].isnan().all()


# ---------------------------------------------------------------- the reference's share checks what the op checks
def op_share(x, labels, proxies, class_offset, total_classes):
    """The compiled op's share, as the sharded loss calls it (see_cuda.fused.proxy_anchor)."""
    return fused.proxy_anchor(x, labels, proxies, None, None, ProxyAnchorSettings(), 0.0,
                              class_offset=class_offset, total_classes=total_classes)


def reference_share(x, labels, proxies, class_offset, total_classes):
    return reference.proxy_anchor_share(x, labels, proxies, class_offset, total_classes)


SHARES = [pytest.param(reference_share, id="reference"),
          pytest.param(op_share, marks=requires_cpu_kernels, id="op")]


@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("class_offset, total_classes, error, message", [
    (7, 9, ValueError, r"class_offset must be <= total_classes - 4 = 5"),  # past the end
    (-1, 9, ValueError, r"class_offset must be >= 0, got -1"),
    (1.5, 9, TypeError, r"class_offset must be an int, got float"),  # not truncated to 1
    (True, 9, TypeError, r"class_offset must be an int, got bool"),
    (0, 3, ValueError, r"class_offset must be <= total_classes - 4 = -1"),  # fewer classes than proxies
    (0, 9.0, TypeError, r"total_classes must be an int, got float"),
])
def test_a_share_outside_the_classes_is_refused_by_the_reference_as_by_the_op(share, class_offset, total_classes,
                                                                               error, message):
    x, labels, proxies = problem()
    with pytest.raises(error, match=message):
        share(x, labels, proxies[:4], class_offset, total_classes)


@requires_cpu_kernels
@pytest.mark.parametrize("class_offset", [0, 3, 5])
def test_the_reference_share_is_the_op_share(class_offset):
    x, labels, proxies = problem()
    local = proxies[class_offset:class_offset + 4]
    assert_close_scaled(reference_share(x, labels, local, class_offset, 9),
                        op_share(x, labels, local, class_offset, 9), 1e-13)


@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("bad_label", [-1, 9])
def test_an_empty_share_with_a_label_outside_all_classes_is_nan_as_the_op_says(share, bad_label):
    """A shard of no class: no term for the NaN row to enter, yet the share is NaN (never 0), gradients too."""
    x, labels, proxies = problem()
    labels[3] = bad_label
    value = share(x, labels, proxies[:0], 9, 9)
    assert value.isnan()
    (grad_x,) = torch.autograd.grad(value, (x,))
    assert grad_x.isnan().all()


@pytest.mark.parametrize("share", SHARES)
def test_an_empty_share_with_valid_labels_is_zero(share):
    x, labels, proxies = problem()
    assert share(x, labels, proxies[:0], 9, 9).item() == 0.0
