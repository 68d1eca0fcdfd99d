"""Proxy-Anchor loss (docs/method.md §1): the pytorch-metric-learning oracle, hand cases, stability, kernels.

Every kernel test runs for each device (cpu, cuda).
"""
import math

import pytest
import torch
from hypothesis import given, settings

import see_cuda
from see_cuda import ops, reference

from comparisons import assert_close_scaled, assert_within_low_precision_error, draw, leaf
from conftest import DEVICES, HAVE_CPU_KERNELS, IMPLEMENTATIONS, requires_cpu_kernels
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
    ProxyAnchorLoss = pytest.importorskip("pytorch_metric_learning.losses").ProxyAnchorLoss
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


# ---------------------------------------------------------------- large alpha: the bound, and what holds inside it
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}


def large_alpha_tolerance(alpha, D, dtype, truth):
    """|fused - truth| for a loss at large α, truth the float64 reference on the same rounded inputs.

    A cosine s = x̂·p̂ in the kernel dtype errs by at most (D + 4)u (the dot
    product's γ_D and the two normalisations). Each term softplus(logsumexp_i a_i)
    is 1-Lipschitz in the logsumexp, which moves by at most α·max|Δs| (its
    weights sum to 1 and each logit is α(s ± δ)); the loss is two means of
    such terms, so it moves by at most 2α(D + 4)u. The terms themselves are
    summed in float64 and rounded once to the dtype: 4u|truth| more.
    """
    u = UNIT_ROUNDOFF[dtype]
    return 2 * alpha * (D + 4) * u + 4 * u * abs(truth)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_max_alpha_is_the_range_bound(dtype):
    """α(1 + |δ|) <= max/4 of the dtype: 7.7e37 in float32, 4.1e307 in float64, 1.5e4 in float16 at δ = 0.1."""
    from see_cuda import validation

    assert validation.max_alpha(dtype, 0.1) == pytest.approx(torch.finfo(dtype).max / 4 / 1.1, rel=1e-12)
    assert validation.max_alpha(torch.float64, 1e300) == pytest.approx(torch.finfo(torch.float64).max / 4 / 1e300)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_beyond_the_bound_is_an_error_for_every_loss(implementation, device, dtype):
    """The README said 'finite for any α'; at α = 1e11 the float32 fused loss was 58% low, and at
    1e20 the float64 one was inf, without a sign."""
    from see_cuda import validation

    x, y, proxies = (t.to(device) for t in loss_problem(12, 4, 8, seed=3))
    x, proxies = x.to(dtype), proxies.to(dtype)
    alpha = validation.max_alpha(dtype, 0.1) * 1.01
    calls = [
        lambda: see_cuda.proxy_anchor_loss(x, y, proxies, alpha=alpha, implementation=implementation),
        lambda: see_cuda.proxy_anchor_loss_with_synthetic(x, y, proxies, x[:3], y[:3], alpha=alpha,
                                                          implementation=implementation),
        lambda: see_cuda.fused_see_loss(x, y, proxies, n_expansion=4, alpha=alpha, implementation=implementation),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="alpha=.* is too large"):
            call()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fraction_of_bound", [2.0**-20, 2.0**-10, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_loss_up_to_the_alpha_bound_is_finite_and_the_reference(implementation, device, dtype, fraction_of_bound,
                                                                seed):
    from see_cuda import validation

    B, C, D = 16 + seed, 3 + 2 * seed, 4 + 13 * seed
    x, y, proxies = loss_problem(B, C, D, seed=100 + seed)
    alpha = validation.max_alpha(dtype, 0.1) * fraction_of_bound
    truth = reference.proxy_anchor_loss(x.to(dtype).double(), y, proxies.to(dtype).double(), alpha, 0.1).item()
    for loss in (see_cuda.proxy_anchor_loss(x.to(device, dtype), y.to(device), proxies.to(device, dtype), alpha=alpha,
                                            implementation=implementation),
                 see_cuda.fused_see_loss(x.to(device, dtype), y.to(device), proxies.to(device, dtype), alpha=alpha,
                                         mode="none", implementation=implementation)):
        assert torch.isfinite(loss)
        assert abs(loss.item() - truth) <= large_alpha_tolerance(alpha, D, dtype, truth)
    # With synthetic rows (λ = 0.2), whose cosines also carry the expansion's rounding: the frame
    # (the Q factor of [ŵ, ẑ, draw]) is exact for inputs perturbed by (D + 4)u per column, and moves
    # by κ times that (κ its condition number, test_expansion.py); each point sums n + 1 frame
    # vectors of weight <= 1. So its cosines err by (D + 4)u·(1 + (n + 1)κ) at most, λ times the
    # loss's sensitivity 2α.
    n = 2
    if D >= n + 1:
        x_r, p_r = x.to(dtype).double(), proxies.to(dtype).double()
        noise = draw(B, n - 1, D, seed=200 + seed).to(dtype)
        see = see_cuda.fused_see_loss(x.to(device, dtype), y.to(device), proxies.to(device, dtype), n_expansion=n,
                                      ratio=0.5, alpha=alpha, noise=noise.to(device), implementation=implementation)
        see_truth = reference.see_loss(x_r, y, p_r, n_expansion=n, ratio=0.5, alpha=alpha,
                                       noise=noise.double()).item()
        frames = torch.cat([reference.l2_normalize(v).unsqueeze(1) for v in (p_r[y], x_r)] + [
            reference.l2_normalize(noise.double())], dim=1)
        singular = torch.linalg.svdvals(frames)
        kappa = (singular[:, 0] / singular[:, -1]).max().item()
        synthetic_error = 0.2 * 2 * alpha * (D + 4) * UNIT_ROUNDOFF[dtype] * (1 + (n + 1) * kappa)
        assert torch.isfinite(see)
        assert abs(see.item() - see_truth) <= large_alpha_tolerance(alpha, D, dtype, see_truth) + synthetic_error


# The kernels take each column's exponents relative to its extreme cosine as stored, so that the
# extreme entry's exponent is exactly 0 for any α. (A kernel that took the extreme of products
# row·scale but recomputed the exponents as fma(row, scale, -ref) lost whole columns: α times a
# product's rounding error, beyond α ≈ 2^31 in float32, pushed all of a column's terms below exp's range.)
@requires_cpu_kernels
@pytest.mark.parametrize("dtype, alpha", [(torch.float32, 2.0**36), (torch.float32, 1e20), (torch.float32, 1e30),
                                          (torch.float64, 2.0**66), (torch.float64, 1e20), (torch.float64, 1e100)])
def test_raw_op_loss_at_large_alpha_is_the_reference(dtype, alpha):
    x, y, proxies = loss_problem(16, 5, 32, seed=0)
    x, proxies = x.to(dtype), proxies.to(dtype)
    empty = x[:0]
    loss = torch.ops.see_cuda.proxy_anchor_fused(x, y, proxies, empty, y[:0], alpha, 0.1, 0.0, False, False)[0]
    truth = reference.proxy_anchor_loss(x.double(), y, proxies.double(), alpha, 0.1).item()
    assert math.isfinite(loss.item())
    assert abs(loss.item() - truth) <= large_alpha_tolerance(alpha, 32, dtype, truth)


# ---------------------------------------------------------------- non-finite input through the raw op
# The public functions reject it (validation); the op itself must not turn it into a finite loss.
# Its two parts are separate sums: a NaN in one reaches the loss and whatever that part's gradient
# reaches (dL/dproxies always), as autograd of the reference has it.
@requires_cpu_kernels
@pytest.mark.parametrize("where", ["x-nan", "x-inf", "proxies-nan", "synthetic-nan"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_raw_op_turns_no_nan_into_a_finite_loss(where, dtype, chunk_bytes):
    x, y, proxies = (t.to(dtype) if t.dtype.is_floating_point else t for t in loss_problem(6, 3, 8, seed=5))
    synthetic, synthetic_labels = x[:4].clone() * 2, y[:4]
    target = {"x": x, "proxies": proxies, "synthetic": synthetic}[where.split("-")[0]]
    target[1, 3] = float("nan") if where.endswith("nan") else float("inf")
    outputs = torch.ops.see_cuda.proxy_anchor_fused(x, y, proxies, synthetic, synthetic_labels, 32.0, 0.1, 0.5, True,
                                                    True, chunk_bytes=chunk_bytes)
    inputs = [t.double().requires_grad_() for t in (x, proxies, synthetic)]
    truth = reference.proxy_anchor_loss_with_synthetic(inputs[0], y, inputs[1], inputs[2], synthetic_labels, 0.5)
    truth_grads = torch.autograd.grad(truth, inputs)
    assert torch.isnan(outputs[0]) and torch.isnan(truth)
    assert [bool(torch.isnan(t).any()) for t in outputs[1:]] == [bool(torch.isnan(t).any()) for t in truth_grads]
    assert torch.isnan(outputs[2]).any(), "every proxy's gradient sees every row"


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_a_term_whose_logits_are_exactly_zero_has_half_the_slope(implementation, device):
    """softplus'(0) = σ(0) = 1/2. The reference wrote |v| with abs, whose derivative at 0 is 0, beside
    clamp's 1, and gave twice the gradient to a synthetic row of zeros (cosine 0, margin 0)."""
    x = torch.tensor([[1.5410, -0.2934]], dtype=torch.float64)
    zero_row, y = torch.zeros(1, 2, dtype=torch.float64), torch.tensor([0])
    lam, alpha = 0.2, 32.0
    inputs = [leaf(t, device) for t in (x, x, zero_row)]
    loss = see_cuda.proxy_anchor_loss_with_synthetic(inputs[0], y.to(device), inputs[1], inputs[2], y.to(device), lam,
                                                     alpha, 0.0, implementation=implementation)
    (grad_zero_row,) = torch.autograd.grad(loss, inputs[2])
    # λ·softplus(-α ŝ) with ŝ = ẑ·p̂ and ẑ = z / sqrt(|z|² + ε), whose Jacobian at 0 is I/sqrt(ε).
    expected = -lam * alpha * 0.5 / reference.NORM_EPS**0.5 * reference.l2_normalize(x)
    torch.testing.assert_close(grad_zero_row.cpu(), expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_float16_loss_over_many_classes_does_not_overflow_its_sum(implementation, device):
    """The terms are averaged, not summed first: 5000 classes of terms near 20 add up past float16's
    65504, while their mean is far inside it."""
    x, y, proxies = loss_problem(64, 5000, 16, seed=9)
    got = see_cuda.proxy_anchor_loss(x.half().to(device), y.to(device), proxies.half().to(device),
                                     implementation=implementation)
    expected = reference.proxy_anchor_loss(x.half().double(), y, proxies.half().double())
    assert torch.isfinite(got)
    torch.testing.assert_close(got.double().cpu(), expected, rtol=2e-2, atol=0)
