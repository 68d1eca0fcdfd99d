"""Proxy-Anchor loss (docs/method.md §1): the pytorch-metric-learning oracle, hand cases, stability, kernels.

Every kernel test runs for each device (cpu, cuda).
"""
import math

import pytest
import torch
from hypothesis import given, settings
from pytorch_metric_learning.losses import ProxyAnchorLoss

import see_cuda
from see_cuda import ops, reference

from comparisons import assert_close_scaled, assert_within_low_precision_error, draw, leaf
from conftest import DEVICES, HAVE_CPU_KERNELS, IMPLEMENTATIONS
from oracles.original_see import original_proxy_anchor
from strategies import loss_problems

RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def loss_and_grads(implementation, x, y, proxies, device="cpu", **kwargs):
    """(loss, dL/dx, dL/dproxies) computed on `device`, returned on the CPU."""
    x, proxies = leaf(x, device), leaf(proxies, device)
    loss = see_cuda.proxy_anchor_loss(x, y.to(device), proxies, implementation=implementation, **kwargs)
    return tuple(t.cpu() for t in (loss, *torch.autograd.grad(loss, (x, proxies))))


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_matches_pytorch_metric_learning(implementation, device, seed, dtype, rtol):
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
    got = loss_and_grads(implementation, x, y, oracle.proxies.detach(), device)
    torch.testing.assert_close(got[0], expected, rtol=rtol, atol=0)
    for mine, theirs in zip(got[1:], expected_grads):
        # Relative to the gradient's scale: single entries can come from cancelling sums.
        torch.testing.assert_close(mine, theirs, rtol=rtol, atol=rtol * theirs.abs().max().item())


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_single_sample_single_class_by_hand(implementation, device):
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    proxies = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    s = 0.6  # cosine of (3, 4) with (1, 0)
    alpha, margin = 8.0, 0.25
    expected = math.log1p(math.exp(-alpha * (s - margin)))  # one positive, no negative
    loss = see_cuda.proxy_anchor_loss(x.to(device), torch.tensor([0], device=device), proxies.to(device), alpha, margin,
                                      implementation=implementation)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_negatives_term_by_hand(implementation, device):
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    proxies = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    alpha, margin = 4.0, 0.1
    s = x @ proxies.t()
    pos = math.log1p(math.exp(-alpha * (s[0, 0] - margin)) + math.exp(-alpha * (s[1, 0] - margin)))
    neg = math.log1p(math.exp(alpha * (s[0, 1] + margin)) + math.exp(alpha * (s[1, 1] + margin)))
    expected = pos / 1 + neg / 2
    loss = see_cuda.proxy_anchor_loss(x.to(device), y.to(device), proxies.to(device), alpha, margin,
                                      implementation=implementation)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_gradcheck(implementation, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 5, dtype=torch.float64, generator=g).to(device).requires_grad_()
    y = torch.tensor([0, 0, 1, 1, 1, 3, 3, 0, 1], device=device)
    proxies = torch.randn(5, 5, dtype=torch.float64, generator=g).to(device).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, p: see_cuda.proxy_anchor_loss(a, y, p, 6.0, 0.1, implementation=implementation), (x, proxies)
    )


def test_reference_matches_the_direct_exponentials_where_those_do_not_overflow():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 8, dtype=torch.float64, generator=g)
    proxies = torch.randn(6, 8, dtype=torch.float64, generator=g)
    y = torch.randint(0, 6, (20,), generator=g)
    torch.testing.assert_close(
        reference.proxy_anchor_loss(x, y, proxies), original_proxy_anchor(x, y, proxies, 32.0, 0.1), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_large_alpha_and_half_precision_stay_finite(implementation, device, dtype):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 8, generator=g).to(dtype)
    proxies = torch.randn(4, 8, generator=g).to(dtype)
    y = torch.randint(0, 4, (16,), generator=g)
    loss, gx, gp = loss_and_grads(implementation, x, y, proxies, device, alpha=400.0)
    assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gp).all()
    naive = original_proxy_anchor(x.float(), y, proxies.float(), 400.0, 0.1)
    assert not torch.isfinite(naive), "the direct exponentials overflow here; the stable form must not"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", [32.0, 400.0])
@settings(max_examples=40, deadline=None)
@given(problem=loss_problems())
def test_fused_matches_reference_float64(device, alpha, problem):
    x, y, proxies, _, _ = problem
    expected = loss_and_grads("reference", x, y, proxies, alpha=alpha)
    fused = loss_and_grads("fused", x, y, proxies, device, alpha=alpha)
    for mine, theirs in zip(fused, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(3))
def test_fused_matches_reference_float32(device, seed):
    g = torch.Generator().manual_seed(seed)
    x, proxies = torch.randn(180, 64, generator=g), torch.randn(300, 64, generator=g)
    y = torch.randint(0, 300, (180,), generator=g)
    expected = loss_and_grads("reference", x.double(), y, proxies.double())
    fused = loss_and_grads("fused", x, y, proxies, device)
    for mine, theirs in zip(fused, expected):
        scale = theirs.detach().abs().max()
        torch.testing.assert_close(mine.double(), theirs, rtol=1e-5, atol=1e-5 * scale.item())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_half_precision_within_the_error_of_torch_in_that_precision(device, dtype):
    g = torch.Generator().manual_seed(4)
    x, proxies = torch.randn(64, 32, generator=g), torch.randn(20, 32, generator=g)
    y = torch.randint(0, 20, (64,), generator=g)
    x_low, p_low = x.to(dtype), proxies.to(dtype)
    ref32 = loss_and_grads("reference", x_low.float(), y, p_low.float())
    torch_low = loss_and_grads("reference", x_low, y, p_low)
    fused = loss_and_grads("fused", x_low, y, p_low, device)
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert mine.dtype == low.dtype
        bound = 2 * (low.float() - exact).abs() + 1e-3 * exact.abs().max()
        assert ((mine.float() - exact).abs() <= bound).all()


# ---------------------------------------------------------------- each device's kernel vs the reference and the CPU
def loss_problem(B, C, D, seed, unused_classes=0):
    y = torch.randint(0, max(1, C - unused_classes), (B,), generator=torch.Generator().manual_seed(seed))
    return draw(B, D, seed=seed + 1), y, draw(C, D, seed=seed + 2)


# (B, C, D, classes without a positive); 64 needs the exact references in
# float32, 400 in float64 too. The SOP-sized one runs on a GPU only.
PA_SIZES = [(9, 5, 5, 1), (1, 1, 3, 0), (40, 1, 8, 0), (64, 20, 32, 5), (180, 300, 64, 0)]
GPU_PA_SIZES = [(500, 11318, 128, 0)]
PA_CASES = [
    pytest.param(device.values[0], size, dtype, alpha, marks=device.marks)
    for device in DEVICES
    for size in PA_SIZES + (GPU_PA_SIZES if device.values[0] == "cuda" else [])
    for dtype, alphas in ((torch.float64, (32.0, 400.0)), (torch.float32, (32.0, 64.0)))
    for alpha in alphas
]


@pytest.mark.parametrize("device, size, dtype, alpha", PA_CASES)
def test_proxy_anchor_matches_reference_and_cpu(device, size, dtype, alpha):
    B, C, D, unused = size
    # float32 cosines carry their rounding into the exponents times alpha.
    rtol = RTOL[dtype] * max(1.0, alpha / 32.0) if dtype == torch.float32 else RTOL[dtype]
    x, y, proxies = loss_problem(B, C, D, seed=B + C, unused_classes=unused)
    got = loss_and_grads("fused", x.to(dtype), y, proxies.to(dtype), device, alpha=alpha)
    assert got[0].dtype == dtype and got[0].dim() == 0
    x_r, p_r = x.to(dtype).double(), proxies.to(dtype).double()
    expected = loss_and_grads("reference", x_r, y, p_r, device, alpha=alpha)
    cpu = loss_and_grads("fused", x.to(dtype), y, proxies.to(dtype), alpha=alpha)
    for mine, truth, theirs in zip(got, expected, cpu):
        assert_close_scaled(mine, truth, rtol)
        assert_close_scaled(mine, theirs, rtol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_proxy_anchor_low_precision_within_the_error_of_torch_in_that_precision(device, dtype):
    x, y, proxies = loss_problem(64, 20, 32, seed=4)
    x_low, p_low = x.to(dtype), proxies.to(dtype)
    fused = loss_and_grads("fused", x_low, y, p_low, device)
    torch_low = loss_and_grads("reference", x_low, y, p_low, device)
    ref32 = loss_and_grads("reference", x_low.float(), y, p_low.float(), device)
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert_within_low_precision_error(mine, low, exact)


def _cpu_kernel_reports_bad_labels_as_nan() -> bool:
    """Whether this build's CPU kernel answers an out-of-range label with NaN (older builds raised)."""
    if not HAVE_CPU_KERNELS:
        return False
    x = torch.ones(1, 2)
    try:
        loss = ops.proxy_anchor_fused(x, torch.tensor([3]), x, x[:0], torch.tensor([], dtype=torch.int64),
                                      32.0, 0.1, 0.0)
    except (RuntimeError, ValueError):
        return False
    return bool(torch.isnan(loss))


BAD_LABEL_DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(
        not _cpu_kernel_reports_bad_labels_as_nan(),
        reason="this build's CPU Proxy-Anchor kernel raises for out-of-range labels (built before it returned NaN)")),
    DEVICES[1],
]


@pytest.mark.parametrize("device", BAD_LABEL_DEVICES)
def test_out_of_range_labels_give_nan_inside_the_tensors(device):
    """Unchecked labels (check_values=False on a GPU) reach the op: it must stay within its
    tensors for any label and make the loss and every gradient NaN, never a finite answer."""
    C, D, alpha, margin, lam = 4, 6, 32.0, 0.1, 0.2
    x, proxies, synthetic = draw(5, D, seed=1), draw(C, D, seed=2), draw(6, D, seed=3)
    cases = [
        (torch.tensor([0, 3, -1, 7, 2]), torch.tensor([1, 1, 2, 3, 0, 0])),  # bad real labels
        (torch.tensor([0, 3, 1, 1, 2]), torch.tensor([1, 1, 9, C, -5, 0])),  # bad synthetic labels
    ]
    for labels, synthetic_labels in cases:
        outputs = torch.ops.see_cuda.proxy_anchor_fused(
            x.to(device), labels.to(device), proxies.to(device), synthetic.to(device), synthetic_labels.to(device),
            alpha, margin, lam, True, True,
        )
        assert torch.isnan(outputs[0].cpu())
        assert all(torch.isnan(t.cpu()).any() for t in outputs[1:])
