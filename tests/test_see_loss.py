"""The SEE loss (docs/method.md §4): oracle, detach semantics, one-call vs composed vs reference, per device."""
import dataclasses

import pytest
import torch
from hypothesis import given, settings

import see_cuda
from see_cuda import reference

from comparisons import assert_close_scaled, assert_within_low_precision_error, draw, leaf
from conftest import DEVICES, IMPLEMENTATIONS, requires_cpu_kernels, requires_cuda_kernels
from oracles.original_see import original_see_loss
from strategies import loss_problems

RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def see_and_grads(implementation, x, y, proxies, device="cpu", **kwargs):
    """(loss, dL/dx, dL/dproxies) of fused_see_loss computed on `device`, returned on the CPU."""
    x, proxies = leaf(x, device), leaf(proxies, device)
    if isinstance(kwargs.get("noise"), torch.Tensor):
        kwargs["noise"] = kwargs["noise"].to(device)
    if kwargs.get("generator") == "seeded":
        kwargs["generator"] = torch.Generator(device=device).manual_seed(kwargs.pop("seed"))
    loss = see_cuda.fused_see_loss(x, y.to(device), proxies, implementation=implementation, **kwargs)
    return tuple(t.cpu() for t in (loss, *torch.autograd.grad(loss, (x, proxies))))


def batch(B=40, D=24, C=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, D, generator=g, dtype=dtype), torch.randint(0, C, (B,), generator=g),
            torch.randn(C, D, generator=g, dtype=dtype))


@pytest.mark.parametrize("seed", range(3))
def test_reference_matches_the_per_sample_original(seed):
    # The noise seed differs from the data seed: with equal seeds a noise draw
    # repeats a sample, lies in the span of its frame, and single-pass classical
    # Gram-Schmidt (the original's) loses orthogonality where two passes do not.
    x, y, proxies = batch(seed=seed)
    expected = original_see_loss(x, y, proxies, n_expansion=6, lam=0.3, ratio=0.4,
                                 generator=torch.Generator().manual_seed(seed + 100))
    got = reference.see_loss(x, y, proxies, n_expansion=6, lam=0.3, ratio=0.4,
                             generator=torch.Generator().manual_seed(seed + 100))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_noise_nearly_in_the_span_of_the_frame_still_gives_a_regular_simplex(implementation, device):
    """Draws a millionth of their length off the span of the frame lose all but that to the projections;
    reorthogonalisation keeps the frame orthonormal. (A draw in the span to rounding leaves the frame
    undefined and the points NaN: test_expansion.py.)"""
    x, y, proxies = batch(B=10, D=12, C=3, seed=7)
    noise = torch.randn(10, 3, 12, dtype=torch.float64)
    fresh = draw(10, 2, 12, seed=8)
    noise[:, 1] = 5.0 * x + 1e-6 * fresh[:, 0]  # nearly the sample itself: span{w, u}
    noise[:, 2] = proxies[y] - 1e-9 * x + 1e-6 * fresh[:, 1]
    out = see_cuda.spherical_expansion(x.to(device), proxies[y].to(device), 4, noise=noise.to(device),
                                       implementation=implementation).cpu()
    axis = reference.l2_normalize(proxies[y]).unsqueeze(1)
    offsets = out - (out * axis).sum(-1, keepdim=True) * axis
    gram = offsets @ offsets.transpose(1, 2)
    rho_sq = gram.diagonal(dim1=1, dim2=2).mean(-1)
    expected = (-rho_sq / 4)[:, None, None] * torch.ones(4, 4, dtype=torch.float64)
    expected.diagonal(dim1=1, dim2=2).copy_(rho_sq.unsqueeze(1).expand(-1, 4))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_synthetic_term_trains_only_the_proxies(implementation, device):
    x, y, proxies = batch()
    see = see_and_grads(implementation, x, y, proxies, device, n_expansion=5, lam=0.5, generator="seeded", seed=0)
    pa = see_and_grads(implementation, x, y, proxies, device, n_expansion=5, lam=0.0)
    torch.testing.assert_close(see[1], pa[1], rtol=1e-12, atol=1e-14)  # detached: no path to x
    assert (see[2] - pa[2]).abs().max() > 1e-6  # but the proxies feel it
    assert see[0] > pa[0]


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_non_detached_synthetic_term_reaches_the_embeddings(implementation, device):
    x, y, proxies = batch(seed=1)
    noise = draw(x.shape[0], 4, x.shape[1], seed=11)
    detached = see_and_grads(implementation, x, y, proxies, device, n_expansion=5, noise=noise)
    attached = see_and_grads(implementation, x, y, proxies, device, n_expansion=5, noise=noise, detach_synthetic=False)
    torch.testing.assert_close(attached[0], detached[0])
    assert (attached[1] - detached[1]).abs().max() > 1e-6


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_gradcheck_of_the_loss_with_synthetic_rows(implementation, device):
    x, y, proxies = (t.to(device) for t in batch(B=10, D=7, C=4, seed=2))
    synthetic = draw(12, 7, seed=12).to(device)
    # Class 3 has no synthetic positive.
    synthetic_labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 1, 2], device=device)

    def fn(a, p, z):
        return see_cuda.proxy_anchor_loss_with_synthetic(a, y, p, z, synthetic_labels, lam=0.4, alpha=8.0,
                                                         implementation=implementation)

    assert torch.autograd.gradcheck(fn, (x.requires_grad_(), proxies.requires_grad_(), synthetic.requires_grad_()))


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_see_gradient_is_that_of_its_synthetic_points_held_fixed(implementation, device):
    """With detached synthetic points (the original), the SEE loss's gradient is,
    by definition, that of PA(x) + λ·PA(Z) with Z held constant: gradcheck cannot
    see a detach, so it checks that function (above) and this checks the tie."""
    x, y, proxies = batch(B=12, D=9, C=4, seed=3)
    noise = draw(12, 3, 9, seed=13)
    got = see_and_grads(implementation, x, y, proxies, device, n_expansion=4, lam=0.4, ratio=0.5, noise=noise)
    selected = see_cuda.select_for_expansion(reference.positive_cosines(x, y, proxies), "fraction", 0.5, 0.0)
    Z = see_cuda.spherical_expansion(x[selected].to(device), proxies[y[selected]].to(device), 4,
                                     noise=noise[selected].to(device), implementation=implementation).reshape(-1, 9)
    xx, pp = leaf(x, device), leaf(proxies, device)
    Z_labels = y[selected].repeat_interleave(4).to(device)
    fixed = see_cuda.proxy_anchor_loss_with_synthetic(xx, y.to(device), pp, Z, Z_labels, 0.4,
                                                      implementation=implementation)
    expected = [t.cpu() for t in (fixed, *torch.autograd.grad(fixed, (xx, pp)))]
    # The fused loss rebuilds Z itself (its frames by Cholesky QR, not the
    # expansion op's Gram-Schmidt), equal to Z to rounding; a gradient leaking
    # through Z would differ at order 1.
    rtol, atol = (1e-12, 1e-14) if implementation == "reference" else (1e-10, 1e-12)
    for mine, theirs in zip(got, expected):
        torch.testing.assert_close(mine, theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_gradcheck_wrt_embeddings_through_the_expansion(implementation, device):
    """Without detaching, w.r.t. the embeddings. The expansion's axis is always the
    detached proxy, and a detached loss ignores how its points move, both of which
    finite differences would see: the test above checks those gradients against
    the loss with its points held fixed."""
    x, y, proxies = (t.to(device) for t in batch(B=10, D=7, C=4, seed=2))
    noise = draw(10, 2, 7, seed=14).to(device)

    def fn(a):
        return see_cuda.fused_see_loss(a, y, proxies, n_expansion=3, lam=0.4, ratio=0.5, alpha=8.0, noise=noise,
                                       detach_synthetic=False, implementation=implementation)

    assert torch.autograd.gradcheck(fn, (x.requires_grad_(),))


@requires_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_draws_that_defeat_cholesky_qr_fall_back_to_gram_schmidt(dtype):
    # The one-call kernel is the CPU's alone.
    """Draws that lose most of their length to the frame before them trip the
    Cholesky QR guard; the kernel then reorthogonalises by Gram-Schmidt and still
    matches the reference. (What is left of each draw stays well above rounding,
    so that the frame is well defined in both precisions.)"""
    x, y, proxies = batch(B=10, D=12, C=3, seed=7)
    noise = torch.randn(10, 3, 12, dtype=torch.float64)
    noise[:, 1] = 5.0 * x + 0.3 * noise[:, 1]  # mostly in span{w, u}
    noise[:, 2] = noise[:, 0] + 0.1 * noise[:, 2]  # mostly along the first draw
    expected = see_and_grads("reference", x, y, proxies, n_expansion=4, ratio=1.0, noise=noise)
    fused = see_and_grads("fused", x.to(dtype), y, proxies.to(dtype), n_expansion=4, ratio=1.0, noise=noise.to(dtype))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for mine, theirs in zip(fused, expected):
        torch.testing.assert_close(mine.double(), theirs, rtol=tol, atol=tol * theirs.abs().max().item())


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_equal_cosines_are_selected_in_batch_order(implementation, device):
    """Rows with one cosine: the first ones in the batch are expanded, each with its own draws."""
    x, y, proxies = batch(B=8, D=6, C=2, seed=8)
    x = x[:1].expand(8, -1).clone()
    y = torch.zeros(8, dtype=torch.int64)
    noise = draw(8, 2, 6, seed=15)
    got = see_and_grads(implementation, x, y, proxies, device, n_expansion=3, ratio=0.25, noise=noise)
    synthetic = see_cuda.spherical_expansion(x[:2], proxies[y[:2]], 3, noise=noise[:2], implementation="reference")
    fixed = see_cuda.proxy_anchor_loss_with_synthetic(x, y, proxies, synthetic.reshape(6, 6), y[:6], 0.2,
                                                      implementation="reference")
    torch.testing.assert_close(got[0], fixed, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=50, deadline=None)
@given(problem=loss_problems())
def test_fused_matches_reference_float64(device, problem):
    x, y, proxies, n, ratio = problem
    kwargs = dict(n_expansion=n, ratio=ratio, lam=0.3, generator="seeded", seed=5)
    expected = see_and_grads("reference", x, y, proxies, device, **kwargs)
    fused = see_and_grads("fused", x, y, proxies, device, **kwargs)
    # Relative to each tensor's scale: a gradient entry that is a near-cancelling
    # sum of terms exp(alpha s) carries their rounding, ~1e-16 of the largest.
    for mine, theirs in zip(fused, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10 * theirs.abs().max().item())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(180, 128, 500), (90, 64, 40), (17, 40, 1)])
def test_fused_matches_reference_float32(device, shape):
    x, y, proxies = batch(*shape, seed=3, dtype=torch.float32)
    # One set of draws for both (a generator gives other numbers in float32 and float64).
    noise = draw(shape[0], 15, shape[1], seed=16)
    expected = see_and_grads("reference", x.double(), y, proxies.double(), noise=noise)
    fused = see_and_grads("fused", x, y, proxies, device, noise=noise.float())
    for mine, theirs in zip(fused, expected):
        torch.testing.assert_close(mine.double(), theirs, rtol=1e-5, atol=1e-5 * theirs.detach().abs().max().item())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_half_precision_within_the_error_of_torch_in_that_precision(device, dtype):
    x, y, proxies = batch(64, 32, 12, seed=4, dtype=torch.float32)
    x_low, p_low = x.to(dtype), proxies.to(dtype)
    seeded = dict(generator="seeded", seed=2)
    ref32 = see_and_grads("reference", x_low.float(), y, p_low.float(), device, **seeded)
    torch_low = see_and_grads("reference", x_low, y, p_low, device, **seeded)
    fused = see_and_grads("fused", x_low, y, p_low, device, **seeded)
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert mine.dtype == dtype
        bound = 2 * (low.float() - exact).abs() + 1e-3 * exact.abs().max()
        assert ((mine.float() - exact).abs() <= bound).all()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_mixed_precision_embeddings_with_float32_proxies(implementation, device):
    x, y, proxies = batch(dtype=torch.float32)
    loss, gx, gp = see_and_grads(implementation, x.to(torch.bfloat16), y, proxies, device, generator="seeded", seed=0)
    assert loss.dtype == torch.float32 and gx.dtype == torch.bfloat16 and gp.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(gx.float()).all() and torch.isfinite(gp).all()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_nothing_selected_is_plain_proxy_anchor(implementation, device):
    x, y, proxies = (t.to(device) for t in batch())
    pa = see_cuda.proxy_anchor_loss(x, y, proxies, implementation=implementation)
    for kwargs in (dict(ratio=0.0), dict(mode="threshold", threshold=1.5), dict(mode="none")):
        loss, stats = see_cuda.fused_see_loss(x, y, proxies, return_stats=True, implementation=implementation, **kwargs)
        torch.testing.assert_close(loss, pa)
        assert stats.num_expanded == 0 and stats.num_synthetic == 0


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_mode_none_is_proxy_anchor_bit_for_bit_and_draws_nothing(implementation, device):
    """PA training runs are the module with mode="none": the same numbers as proxy_anchor_loss."""
    x, y, proxies = batch()
    expected = [t.cpu() for t in
                _pa_and_grads(implementation, x.to(device), y.to(device), proxies.to(device))]
    generator = torch.Generator(device=device).manual_seed(0)
    state = generator.get_state()
    got = see_and_grads(implementation, x, y, proxies, device, mode="none", generator=generator, n_expansion=40)
    for mine, theirs in zip(got, expected):
        assert torch.equal(mine, theirs)
    assert torch.equal(generator.get_state(), state)


def _pa_and_grads(implementation, x, y, proxies):
    x, proxies = x.clone().requires_grad_(), proxies.clone().requires_grad_()
    loss = see_cuda.proxy_anchor_loss(x, y, proxies, implementation=implementation)
    return (loss, *torch.autograd.grad(loss, (x, proxies)))


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_stats_report_the_selection(implementation, device):
    x, y, proxies = (t.to(device) for t in batch(B=45))
    _, stats = see_cuda.fused_see_loss(x, y, proxies, n_expansion=4, ratio=0.4, return_stats=True,
                                       implementation=implementation)
    assert stats.num_expanded == 18 and stats.num_synthetic == 72
    torch.testing.assert_close(stats.mean_positive_cosine, reference.positive_cosines(x, y, proxies).mean())
    _, stats = see_cuda.fused_see_loss(x, y, proxies, mode="threshold", threshold=-1.0, return_stats=True,
                                       implementation=implementation)
    assert stats.num_expanded == 45


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_degenerate_batches_are_finite(implementation, device):
    proxies = draw(3, 6, seed=17)
    cases = [
        (proxies[[0, 1, 1, 2]] * 2.0, torch.tensor([0, 1, 1, 2])),  # samples equal to their proxies
        (draw(1, 6, seed=18), torch.tensor([2])),  # B = 1
    ]
    for x, y in cases:
        loss, gx, gp = see_and_grads(implementation, x, y, proxies, device, n_expansion=4, ratio=1.0)
        assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gp).all()
    loss, gx, gp = see_and_grads(implementation, draw(5, 6, seed=19), torch.zeros(5, dtype=torch.int64),
                                 proxies[:1], device, n_expansion=4, ratio=1.0)  # C = 1: no negatives anywhere
    assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gp).all()


UNIT_ROUNDOFF32 = 2.0**-24


def gamma(m: int) -> float:
    """γ_m = m·u/(1 - m·u): a sum of m products, in any order, errs by at most γ_m·Σ|a_i b_i|."""
    return m * UNIT_ROUNDOFF32 / (1 - m * UNIT_ROUNDOFF32)


@requires_cpu_kernels
def test_fused_is_bitwise_deterministic_at_a_fixed_thread_count():
    """The kernels' own loops reduce in a fixed order, and the Philox draws are a function
    of (seed, index): repeated runs with one thread count give the same bits."""
    x, y, proxies = batch(180, 128, 300, seed=6, dtype=torch.float32)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        first, again = (see_and_grads("fused", x, y, proxies, generator="seeded", seed=9) for _ in range(2))
        for a, b in zip(first, again):
            assert torch.equal(a, b)


@requires_cpu_kernels
def test_fused_across_thread_counts_within_the_rounding_of_its_matrix_products():
    """Across thread counts the loss's three matrix products (at::mm: BLAS may split a
    reduction differently per thread count) are the only reductions whose order changes.

    With N = B + k·n rows (unit, |x̂| <= 1), C proxies, and G = dL/dS, the loss
    bounds Σ_i |G_ic| <= (1+λ)·α·(1/|P+| + 1/C) per proxy (each softplus term's
    weights sum to at most α; P+ the classes with a positive) and Σ_c |G_ic| <=
    α·(1 + 1/|P+|) per real row. Two summation orders of a length-m product each
    lie within γ_m·(|A||B|) of the exact one, so:
      S = X̂ P̂ᵀ (length D): |ΔS| <= 2γ_D, which moves G by at most 2α|ΔS| relative;
      the loss by at most Σ|G||ΔS| <= (1+λ)·2α·2γ_D;
      Gᵀ X̂ (length N): |Δ| <= (2γ_N + 4αγ_D)·(1+λ)α(1/|P+| + 1/C) per entry;
      G P̂ (length C): |Δ| <= (2γ_C + 4αγ_D)·α(1 + 1/|P+|) per entry;
    and the normalisations' backward ((I - v̂v̂ᵀ)/|v|) scales a row's 2-norm by at
    most 1/|v|, so an entry of dL/dP or dL/dx moves by at most √D/|v| times the
    largest entry of its row's change.
    """
    B, D, C = 180, 128, 300
    n, lam, alpha, ratio = 16, 0.2, 32.0, 0.4
    x, y, proxies = batch(B, D, C, seed=6, dtype=torch.float32)
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results.append(see_and_grads("fused", x, y, proxies, generator="seeded", seed=9, n_expansion=n, lam=lam,
                                     alpha=alpha, ratio=ratio))
    N = B + round(B * ratio) * n
    classes_with_positive = y.unique().numel()
    shift = 4 * alpha * gamma(D)
    loss_bound = (1 + lam) * 2 * alpha * 2 * gamma(D)
    per_proxy = (2 * gamma(N) + shift) * (1 + lam) * alpha * (1 / classes_with_positive + 1 / C)
    per_row = (2 * gamma(C) + shift) * alpha * (1 + 1 / classes_with_positive)
    grad_x_bound = D**0.5 * per_row / x.norm(dim=1, keepdim=True).double()
    grad_p_bound = D**0.5 * per_proxy / proxies.norm(dim=1, keepdim=True).double()
    (loss_1, gx_1, gp_1), (loss_2, gx_2, gp_2) = results
    assert abs(loss_1.item() - loss_2.item()) <= loss_bound
    assert ((gx_1.double() - gx_2.double()).abs() <= grad_x_bound).all()
    assert ((gp_1.double() - gp_2.double()).abs() <= grad_p_bound).all()


def test_schedules_follow_the_method():
    assert see_cuda.fraction_schedule(0, 40) == pytest.approx(0.04)
    assert see_cuda.fraction_schedule(40, 40) == pytest.approx(0.4)
    assert 0.04 < see_cuda.fraction_schedule(10, 40) < see_cuda.fraction_schedule(30, 40) < 0.4
    assert see_cuda.fraction_schedule(300, 400) == pytest.approx(0.4)  # capped at epoch 200
    assert see_cuda.threshold_schedule(0, 10, 0.5, 0.9) == pytest.approx(0.9)
    assert see_cuda.threshold_schedule(10, 10, 0.5, 0.9) == pytest.approx(0.5)
    assert see_cuda.threshold_schedule(10, 10, 0.5, 0.9, lower_bound=0.7) == pytest.approx(0.7)


def test_module_owns_proxies_and_steps_its_schedule():
    torch.manual_seed(0)
    loss_fn = see_cuda.SEEProxyAnchorLoss(num_classes=10, embedding_size=32, n_expansion=4, num_epochs=10)
    assert loss_fn.proxies.shape == (10, 32) and loss_fn.proxies.requires_grad
    assert loss_fn.proxies.std().item() == pytest.approx((2 / 10) ** 0.5, rel=0.2)  # kaiming normal, fan_out
    x = torch.randn(30, 32, requires_grad=True)
    y = torch.randint(0, 10, (30,))
    loss = loss_fn(x, y)
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None and loss_fn.proxies.grad is not None
    assert loss_fn.last_stats.num_expanded == round(30 * 0.04)
    loss_fn.step_epoch(10)
    loss_fn(x, y)
    assert loss_fn.last_stats.num_expanded == round(30 * 0.4)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_threshold_is_compared_in_the_precision_of_the_cosines(implementation, device):
    """A threshold a hair above a float32 cosine rounds to it, as PyTorch compares
    a float32 tensor with a Python float: that sample is expanded."""
    x = torch.zeros(3, 8)
    x[0, :2] = torch.tensor([3.0, 4.0])  # cosine 3/5 with the proxy e_0, exactly 0.6f in float32
    x[1, :2] = torch.tensor([1.0, 4.0])
    x[2, :2] = torch.tensor([-3.0, 4.0])
    proxies = torch.eye(2, 8)
    y = torch.zeros(3, dtype=torch.int64)
    cosine = float(torch.tensor(0.6, dtype=torch.float32))
    _, stats = see_cuda.fused_see_loss(x.to(device), y.to(device), proxies.to(device), n_expansion=3, mode="threshold",
                                       threshold=cosine + 1e-9, return_stats=True, implementation=implementation)
    assert stats.num_expanded == 1


# ---------------------------------------------------------------- one composition, three ways to run it
def composed_with_ops(x, y, proxies, options, noise):
    """The SEE loss as the composition of the expansion op and the Proxy-Anchor op: the path
    CUDA takes by default, forced here on the CPU (which would run the one-call kernel)."""
    from see_cuda import composition, dispatch

    x, proxies = x.clone().requires_grad_(), proxies.clone().requires_grad_()
    primitives = dispatch.plan("fused", x.device, options.loss).primitives
    loss, _ = composition.see_loss(x, y, proxies, options.expansion, options.loss, primitives, noise=noise)
    return (loss, *torch.autograd.grad(loss, (x, proxies)))


@requires_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("detach_synthetic", [True, False])
def test_one_call_kernel_composed_ops_and_reference_agree(dtype, detach_synthetic):
    """The one-call kernel (CPU, detached) and the ops composed as the reference composes
    them, against the reference in float64 on the same rounded inputs."""
    x, y, proxies = batch(B=48, D=32, C=12, seed=21, dtype=dtype)
    noise = draw(48, 7, 32, seed=24).to(dtype)
    options = see_cuda.SEEOptions(n_expansion=8, lam=0.2, ratio=0.4, detach_synthetic=detach_synthetic)
    expected = see_and_grads("reference", x.double(), y, proxies.double(), noise=noise.double(), options=options)
    composed = composed_with_ops(x, y, proxies, options, noise)
    for mine, truth in zip(composed, expected):
        assert mine.dtype == dtype
        assert_close_scaled(mine, truth, RTOL[dtype])
    if detach_synthetic:
        one_call = see_and_grads("fused", x, y, proxies, noise=noise, options=options)
        for theirs, mine, truth in zip(one_call, composed, expected):
            assert_close_scaled(theirs, truth, RTOL[dtype])
            assert_close_scaled(theirs, mine, 2 * RTOL[dtype])


@requires_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_composed_path_with_a_generator_matches_the_reference(dtype):
    """The composed path draws with the compiled stream, the reference with the PyTorch
    statement of it: the same draws to the stream's ulp bound, so the same loss to rounding."""
    from see_cuda import composition, dispatch

    x, y, proxies = batch(B=40, D=24, C=8, seed=5, dtype=dtype)
    options = see_cuda.SEEOptions(n_expansion=6, ratio=0.5)
    results = []
    for implementation in ("reference", "fused"):
        primitives = dispatch.plan(implementation, x.device, options.loss).primitives
        xx, pp = x.clone().requires_grad_(), proxies.clone().requires_grad_()
        loss, stats = composition.see_loss(xx, y, pp, options.expansion, options.loss, primitives,
                                           torch.Generator().manual_seed(3))
        results.append((loss, *torch.autograd.grad(loss, (xx, pp))))
        assert stats.num_expanded == 20
    for mine, theirs in zip(results[1], results[0]):
        assert_close_scaled(mine, theirs, RTOL[dtype])


# ---------------------------------------------------------------- options
def test_options_are_one_checked_value():
    options = see_cuda.SEEOptions(n_expansion=4, lam=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.lam = 0.5
    assert options.replace(ratio=0.1).ratio == 0.1 and options.ratio == 0.4
    with pytest.raises(ValueError, match="ratio must be <= 1"):
        options.replace(ratio=2.0)
    with pytest.raises(TypeError, match="detach_synthetic must be a bool"):
        see_cuda.SEEOptions(detach_synthetic=1)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_options_and_keywords_give_the_same_loss(implementation, device):
    x, y, proxies = batch()
    noise = draw(40, 4, 24, seed=25)
    keywords = see_and_grads(implementation, x, y, proxies, device, noise=noise, n_expansion=5, lam=0.3, ratio=0.5)
    options = see_cuda.SEEOptions(n_expansion=5, lam=0.3, ratio=0.5)
    given = see_and_grads(implementation, x, y, proxies, device, noise=noise, options=options)
    for a, b in zip(keywords, given):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="not both"):
        see_cuda.fused_see_loss(x, y, proxies, options=options, lam=0.5)


# ---------------------------------------------------------------- value checks
def test_check_values_on_the_cpu_are_made_whatever_the_flag():
    x, y, proxies = batch()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 8\)"):
        see_cuda.fused_see_loss(x, y + 8, proxies, check_values=False)
    with pytest.raises(ValueError, match="proxies contains NaN"):
        see_cuda.proxy_anchor_loss(x, y, proxies * float("nan"), check_values=False)


def as_if_on_cuda_unchecked(monkeypatch):
    """Make validation treat CPU tensors as CUDA tensors with check_values=False: nothing is read."""
    from see_cuda import validation

    monkeypatch.setattr(validation, "values_are_read", lambda device, check_values: False)


def test_unchecked_labels_are_gathered_safely_into_nan_rows():
    from see_cuda.gather import rows_or_nan

    table = draw(4, 3, seed=26)
    rows = rows_or_nan(table, torch.tensor([0, 3, -1, 4, 2, 100]))
    torch.testing.assert_close(rows[[0, 1, 4]], table[[0, 3, 2]], rtol=0, atol=0)
    assert torch.isnan(rows[[2, 3, 5]]).all()


@requires_cpu_kernels
def test_unchecked_out_of_range_label_never_indexes_out_of_the_proxies(monkeypatch):
    """The composed fused path with check_values=False (as on CUDA): the selection, the
    expansion's axes and the mean cosine see NaN rows, not an out-of-bounds index."""
    from see_cuda import composition, dispatch

    as_if_on_cuda_unchecked(monkeypatch)
    x, y, proxies = batch(B=12, D=10, C=3, seed=27)
    y[4] = 3
    options = see_cuda.SEEOptions(n_expansion=3, ratio=0.5)
    reached = {}

    def proxy_anchor(x, y, proxies, synthetic, synthetic_labels, *rest):
        reached["synthetic"] = synthetic
        return torch.zeros(())  # the op itself is tested in test_proxy_anchor.py

    primitives = dispatch.plan("fused", x.device, options.loss).primitives._replace(loss=proxy_anchor)
    _, stats = composition.see_loss(x, y, proxies, options.expansion, options.loss, primitives,
                                    noise=draw(12, 2, 10, seed=28))
    assert torch.isnan(stats.mean_positive_cosine)
    synthetic = reached["synthetic"].reshape(stats.num_expanded, 3, 10)
    assert torch.isnan(synthetic[0]).all(), "the NaN cosine sorts first: its points are NaN"
    assert torch.isfinite(synthetic[1:]).all()


def _cpu_kernel_reports_bad_labels_as_nan():
    from test_proxy_anchor import _cpu_kernel_reports_bad_labels_as_nan as probe

    return probe()


@requires_cpu_kernels
@pytest.mark.skipif(not _cpu_kernel_reports_bad_labels_as_nan(),
                    reason="this build's CPU Proxy-Anchor kernel raises for out-of-range labels")
@pytest.mark.parametrize("mode", ["fraction", "threshold", "none"])
def test_unchecked_out_of_range_label_makes_the_loss_nan(monkeypatch, mode):
    as_if_on_cuda_unchecked(monkeypatch)
    x, y, proxies = batch(B=12, D=10, C=3, seed=27)
    y[4] = -2
    loss = see_cuda.fused_see_loss(x, y, proxies, n_expansion=3, mode=mode, detach_synthetic=False,
                                   check_values=False, implementation="fused")
    assert torch.isnan(loss)


def test_value_checks_read_one_flag_when_all_is_well(monkeypatch):
    """Label range, finiteness and the given noise are reduced to one flag, read once: on CUDA,
    one host synchronisation per call."""
    from see_cuda import validation

    reads = []
    real_bool = torch.Tensor.__bool__

    def counting_bool(t):
        reads.append(t)
        return real_bool(t)

    x, y, proxies = batch()
    noise = draw(40, 4, 24, seed=29)
    monkeypatch.setattr(torch.Tensor, "__bool__", counting_bool)
    validation.check_values(finite={"embeddings": x, "proxies": proxies}, labels={"labels": (y, 8)},
                            noise={"noise": noise})
    assert len(reads) == 1
    reads.clear()
    for dtype in (torch.float64, torch.float16):  # rows normalised in float16 add their norms to the one flag
        validation.check_values(rows={"embeddings": x.to(dtype), "proxies": proxies.to(dtype)},
                                labels={"labels": (y, 8)}, noise={"noise": noise.to(dtype)}, dtype=dtype)
        assert len(reads) == 1
        reads.clear()
    with pytest.raises(ValueError, match="labels must lie"):
        validation.check_values(finite={"embeddings": x}, labels={"labels": (y + 1, 8)})


# ---------------------------------------------------------------- the module
def test_module_state_dict_carries_the_epoch_and_the_generator():
    def module():
        torch.manual_seed(0)
        return see_cuda.SEEProxyAnchorLoss(num_classes=8, embedding_size=24, n_expansion=4, num_epochs=10,
                                           generator=torch.Generator().manual_seed(1))

    x, y, _ = batch(dtype=torch.float32)
    trained = module()
    trained.step_epoch(7)
    trained(x, y)  # advances the generator
    restored = module()
    restored.load_state_dict(trained.state_dict())
    assert restored.epoch == 7 and restored.options == trained.options
    assert torch.equal(restored.generator.get_state(), trained.generator.get_state())
    torch.testing.assert_close(restored(x, y), trained(x, y), rtol=0, atol=0)
    assert restored.last_stats.num_expanded == round(40 * trained.ratio)


def test_module_pa_mode_implementation_and_check_values():
    x, y, proxies = batch(dtype=torch.float32)
    loss_fn = see_cuda.SEEProxyAnchorLoss(num_classes=8, embedding_size=24, mode="none", implementation="reference")
    with torch.no_grad():
        loss_fn.proxies.copy_(proxies)
    torch.testing.assert_close(loss_fn(x, y), see_cuda.proxy_anchor_loss(x, y, proxies, implementation="reference"))
    assert loss_fn.last_stats.num_expanded == 0
    with pytest.raises(ValueError, match="implementation must be one of"):
        see_cuda.SEEProxyAnchorLoss(num_classes=8, embedding_size=24, implementation="gpu")
    with pytest.raises(TypeError, match="check_values must be a bool"):
        see_cuda.SEEProxyAnchorLoss(num_classes=8, embedding_size=24, check_values="yes")
    # Plain Proxy-Anchor needs no room for a frame: D < n + 1 is fine.
    see_cuda.SEEProxyAnchorLoss(num_classes=8, embedding_size=4, mode="none")


# ---------------------------------------------------------------- each device's kernels vs the reference and the CPU
def loss_problem(B, C, D, seed, unused_classes=0):
    y = torch.randint(0, max(1, C - unused_classes), (B,), generator=torch.Generator().manual_seed(seed))
    return draw(B, D, seed=seed + 1), y, draw(C, D, seed=seed + 2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("detach_synthetic", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_see_loss_matches_reference_and_cpu(device, detach_synthetic, dtype):
    B, C, D, n = 48, 12, 32, 8
    x, y, proxies = loss_problem(B, C, D, seed=21, unused_classes=2)
    noise = draw(B, n - 1, D, seed=24)  # loss_problem drew x from seed 22: a draw equal to x lies in its frame
    options = dict(n_expansion=n, lam=0.2, ratio=0.4, detach_synthetic=detach_synthetic)
    got = see_and_grads("fused", x.to(dtype), y, proxies.to(dtype), device, noise=noise.to(dtype), **options)
    rounded = [v.to(dtype).double() for v in (x, proxies, noise)]
    expected = see_and_grads("reference", rounded[0], y, rounded[1], device, noise=rounded[2], **options)
    cpu = see_and_grads("fused", x.to(dtype), y, proxies.to(dtype), noise=noise.to(dtype), **options)
    for mine, truth, theirs in zip(got, expected, cpu):
        assert_close_scaled(mine, truth, RTOL[dtype])
        assert_close_scaled(mine, theirs, RTOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_see_loss_low_precision_within_the_error_of_torch_in_that_precision(device, dtype):
    B, C, D, n = 64, 20, 32, 4
    x, y, proxies = loss_problem(B, C, D, seed=41)
    noise = draw(B, n - 1, D, seed=44)
    x_low, p_low, noise_low = x.to(dtype), proxies.to(dtype), noise.to(dtype)
    # Every sample expanded: no selection boundary that rounding could move.
    options = dict(n_expansion=n, ratio=1.0)
    fused = see_and_grads("fused", x_low, y, p_low, device, noise=noise_low, **options)
    torch_low = see_and_grads("reference", x_low, y, p_low, device, noise=noise_low, **options)
    ref32 = see_and_grads("reference", x_low.float(), y, p_low.float(), device, noise=noise_low.float(), **options)
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert_within_low_precision_error(mine, low, exact)


# ---------------------------------------------------------------- CUDA: host synchronisations, CUDA graphs
def see_problem_on_cuda(B=32, C=10, D=24, n=4, dtype=torch.float32, seed=51):
    x, y, proxies = loss_problem(B, C, D, seed=seed)
    noise = draw(B, n - 1, D, seed=seed + 3)
    return (x.to("cuda", dtype).requires_grad_(), y.cuda(), proxies.to("cuda", dtype).requires_grad_(),
            noise.to("cuda", dtype))


def run_without_sync(fn):
    fn()  # first-call initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = fn()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    return result


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
@pytest.mark.parametrize("with_generator", [False, True])
def test_fraction_mode_see_loss_does_not_synchronize_without_value_checks(device, with_generator):
    x, y, proxies, noise = see_problem_on_cuda()
    kwargs = dict(n_expansion=4, ratio=0.4, mode="fraction", implementation="fused", check_values=False)
    if with_generator:
        kwargs["generator"] = torch.Generator(device=device).manual_seed(0)
    else:
        kwargs["noise"] = noise

    def step():
        loss = see_cuda.fused_see_loss(x, y, proxies, **kwargs)
        loss.backward()
        return loss

    assert torch.isfinite(run_without_sync(step))


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_value_checks_on_cuda_read_nothing_before_the_loss_is_queued(device):
    x, y, proxies, noise = see_problem_on_cuda()

    def forward(labels):
        return see_cuda.fused_see_loss(x, labels, proxies, n_expansion=4, noise=noise, implementation="fused")

    run_without_sync(lambda: forward(y)).backward()  # checked (the default), passing
    see_cuda.wait_for_value_checks()
    torch.cuda.set_sync_debug_mode("error")
    try:
        bad = forward(y + 10)  # queued without a synchronisation: no error yet
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isnan(bad.detach().cpu())
    with pytest.raises(ValueError, match="labels must lie"):
        bad.backward()
    loss = see_cuda.fused_see_loss(x, y + 10, proxies, n_expansion=4, noise=noise, implementation="fused",
                                   check_values=False)
    assert torch.isnan(loss.detach().cpu())
    see_cuda.wait_for_value_checks()  # nothing left pending


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_cuda_graph_replays_forward_and_backward(device):
    x, y, proxies, noise = see_problem_on_cuda()

    def step():
        loss = see_cuda.fused_see_loss(x, y, proxies, n_expansion=4, ratio=0.4, noise=noise, implementation="fused",
                                       check_values=False)
        loss.backward()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture, as torch.cuda.graph requires
        for _ in range(3):
            x.grad = proxies.grad = None
            step()
    torch.cuda.current_stream().wait_stream(side)

    graph = torch.cuda.CUDAGraph()
    x.grad = proxies.grad = None
    with torch.cuda.graph(graph):
        static_loss = step()
    static_grads = (x.grad, proxies.grad)

    for seed in (61, 62):
        new_x, _, new_proxies, _ = see_problem_on_cuda(seed=seed)
        with torch.no_grad():
            x.copy_(new_x)
            proxies.copy_(new_proxies)
        graph.replay()
        torch.cuda.synchronize()
        xx, pp = x.detach().clone().requires_grad_(), proxies.detach().clone().requires_grad_()
        eager = see_cuda.fused_see_loss(xx, y, pp, n_expansion=4, ratio=0.4, noise=noise, implementation="fused")
        eager_grads = torch.autograd.grad(eager, (xx, pp))
        torch.testing.assert_close(static_loss, eager, rtol=1e-6, atol=0)
        for replayed, direct in zip(static_grads, eager_grads):
            assert_close_scaled(replayed, direct, 1e-6)
