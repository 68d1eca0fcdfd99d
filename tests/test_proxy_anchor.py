"""Proxy-Anchor loss: the pytorch-metric-learning oracle, a hand case, stability, fused vs reference."""
import math

import pytest
import torch
from hypothesis import given, settings
from pytorch_metric_learning.losses import ProxyAnchorLoss

import see_cuda
from see_cuda import reference
from conftest import requires_cpu_kernels
from original_see import original_proxy_anchor
from strategies import loss_problems

IMPLEMENTATIONS = ["reference", pytest.param("fused", marks=requires_cpu_kernels)]


def loss_and_grads(implementation, x, y, proxies, **kwargs):
    x, proxies = x.clone().requires_grad_(), proxies.clone().requires_grad_()
    loss = see_cuda.proxy_anchor_loss(x, y, proxies, implementation=implementation, **kwargs)
    return (loss, *torch.autograd.grad(loss, (x, proxies)))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_matches_pytorch_metric_learning(implementation, seed, dtype, rtol):
    g = torch.Generator().manual_seed(seed)
    B, D, C = 32, 16, 10
    x = torch.randn(B, D, generator=g, dtype=dtype)
    y = torch.randint(0, C - 3, (B,), generator=g)  # the last three classes have no positive
    oracle = ProxyAnchorLoss(num_classes=C, embedding_size=D, margin=0.1, alpha=32).to(dtype)
    with torch.no_grad():
        oracle.proxies.copy_(torch.randn(C, D, generator=g, dtype=dtype))
    xx = x.clone().requires_grad_()
    expected = oracle(xx, y)
    expected_grads = torch.autograd.grad(expected, (xx, oracle.proxies))
    got = loss_and_grads(implementation, x, y, oracle.proxies.detach())
    torch.testing.assert_close(got[0], expected, rtol=rtol, atol=0)
    for mine, theirs in zip(got[1:], expected_grads):
        # Relative to the gradient's scale: single entries can come from cancelling sums.
        torch.testing.assert_close(mine, theirs, rtol=rtol, atol=rtol * theirs.abs().max().item())


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_single_sample_single_class_by_hand(implementation):
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    proxies = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    s = 0.6  # cosine of (3, 4) with (1, 0)
    alpha, margin = 8.0, 0.25
    expected = math.log1p(math.exp(-alpha * (s - margin)))  # one positive, no negative
    loss = see_cuda.proxy_anchor_loss(x, torch.tensor([0]), proxies, alpha, margin, implementation=implementation)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_negatives_term_by_hand(implementation):
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    proxies = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    alpha, margin = 4.0, 0.1
    s = x @ proxies.t()
    pos = math.log1p(math.exp(-alpha * (s[0, 0] - margin)) + math.exp(-alpha * (s[1, 0] - margin)))
    neg = math.log1p(math.exp(alpha * (s[0, 1] + margin)) + math.exp(alpha * (s[1, 1] + margin)))
    expected = pos / 1 + neg / 2
    loss = see_cuda.proxy_anchor_loss(x, y, proxies, alpha, margin, implementation=implementation)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradcheck(implementation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 5, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 1, 3, 3, 0, 1])
    proxies = torch.randn(5, 5, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, p: see_cuda.proxy_anchor_loss(a, y, p, 6.0, 0.1, implementation=implementation), (x, proxies)
    )


def test_reference_matches_the_direct_exponentials_where_those_do_not_overflow():
    g = torch.Generator().manual_seed(1)
    x, proxies = torch.randn(20, 8, dtype=torch.float64, generator=g), torch.randn(6, 8, dtype=torch.float64, generator=g)
    y = torch.randint(0, 6, (20,), generator=g)
    torch.testing.assert_close(
        reference.proxy_anchor_loss(x, y, proxies), original_proxy_anchor(x, y, proxies, 32.0, 0.1), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_large_alpha_and_half_precision_stay_finite(implementation, dtype):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 8, generator=g).to(dtype)
    proxies = torch.randn(4, 8, generator=g).to(dtype)
    y = torch.randint(0, 4, (16,), generator=g)
    loss, gx, gp = loss_and_grads(implementation, x, y, proxies, alpha=400.0)
    assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gp).all()
    naive = original_proxy_anchor(x.float(), y, proxies.float(), 400.0, 0.1)
    assert not torch.isfinite(naive), "the direct exponentials overflow here; the stable form must not"


@requires_cpu_kernels
@pytest.mark.parametrize("alpha", [32.0, 400.0])
@settings(max_examples=40, deadline=None)
@given(problem=loss_problems())
def test_fused_matches_reference_float64(alpha, problem):
    x, y, proxies, _, _ = problem
    expected = loss_and_grads("reference", x, y, proxies, alpha=alpha)
    fused = loss_and_grads("fused", x, y, proxies, alpha=alpha)
    for mine, theirs in zip(fused, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


@requires_cpu_kernels
@pytest.mark.parametrize("seed", range(3))
def test_fused_matches_reference_float32(seed):
    g = torch.Generator().manual_seed(seed)
    x, proxies = torch.randn(180, 64, generator=g), torch.randn(300, 64, generator=g)
    y = torch.randint(0, 300, (180,), generator=g)
    expected = loss_and_grads("reference", x.double(), y, proxies.double())
    fused = loss_and_grads("fused", x, y, proxies)
    for mine, theirs in zip(fused, expected):
        scale = theirs.detach().abs().max()
        torch.testing.assert_close(mine.double(), theirs, rtol=1e-5, atol=1e-5 * scale.item())


@requires_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_half_precision_within_the_error_of_torch_in_that_precision(dtype):
    g = torch.Generator().manual_seed(4)
    x, proxies = torch.randn(64, 32, generator=g), torch.randn(20, 32, generator=g)
    y = torch.randint(0, 20, (64,), generator=g)
    x_low, p_low = x.to(dtype), proxies.to(dtype)
    ref32 = loss_and_grads("reference", x_low.float(), y, p_low.float())
    torch_low = loss_and_grads("reference", x_low, y, p_low)
    fused = loss_and_grads("fused", x_low, y, p_low)
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert mine.dtype == low.dtype
        bound = 2 * (low.float() - exact).abs() + 1e-3 * exact.abs().max()
        assert ((mine.float() - exact).abs() <= bound).all()
