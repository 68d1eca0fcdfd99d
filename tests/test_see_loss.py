"""The SEE loss (SEE_METHOD.md §4): oracle, detach semantics, fused vs reference, the module."""
import pytest
import torch
from hypothesis import given, settings

import see_cuda
from see_cuda import reference
from conftest import requires_cpu_kernels
from original_see import original_see_loss
from strategies import loss_problems

IMPLEMENTATIONS = ["reference", pytest.param("fused", marks=requires_cpu_kernels)]


def see_and_grads(implementation, x, y, proxies, **kwargs):
    x, proxies = x.clone().requires_grad_(), proxies.clone().requires_grad_()
    loss = see_cuda.fused_see_loss(x, y, proxies, implementation=implementation, **kwargs)
    return (loss, *torch.autograd.grad(loss, (x, proxies)))


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


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_noise_in_the_span_of_the_frame_still_gives_a_regular_simplex(implementation):
    x, y, proxies = batch(B=10, D=12, C=3, seed=7)
    noise = torch.randn(10, 3, 12, dtype=torch.float64)
    noise[:, 1] = 5.0 * x  # the second draw is the sample itself: in span{w, u}
    noise[:, 2] = proxies[y] - 1e-9 * x
    out = see_cuda.spherical_expansion(x, proxies[y], 4, noise=noise, implementation=implementation)
    offsets = out - (out * reference.l2_normalize(proxies[y]).unsqueeze(1)).sum(-1, keepdim=True) * reference.l2_normalize(proxies[y]).unsqueeze(1)
    gram = offsets @ offsets.transpose(1, 2)
    rho_sq = gram.diagonal(dim1=1, dim2=2).mean(-1)
    expected = (-rho_sq / 4)[:, None, None] * torch.ones(4, 4, dtype=torch.float64)
    expected.diagonal(dim1=1, dim2=2).copy_(rho_sq.unsqueeze(1).expand(-1, 4))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_synthetic_term_trains_only_the_proxies(implementation):
    x, y, proxies = batch()
    see = see_and_grads(implementation, x, y, proxies, n_expansion=5, lam=0.5, generator=torch.Generator().manual_seed(0))
    pa = see_and_grads(implementation, x, y, proxies, n_expansion=5, lam=0.0)
    torch.testing.assert_close(see[1], pa[1], rtol=1e-12, atol=1e-14)  # detached: no path to x
    assert (see[2] - pa[2]).abs().max() > 1e-6  # but the proxies feel it
    assert see[0] > pa[0]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_non_detached_synthetic_term_reaches_the_embeddings(implementation):
    x, y, proxies = batch(seed=1)
    noise = torch.randn(x.shape[0], 4, x.shape[1], dtype=torch.float64)
    detached = see_and_grads(implementation, x, y, proxies, n_expansion=5, noise=noise)
    attached = see_and_grads(implementation, x, y, proxies, n_expansion=5, noise=noise, detach_synthetic=False)
    torch.testing.assert_close(attached[0], detached[0])
    assert (attached[1] - detached[1]).abs().max() > 1e-6


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradcheck_of_the_loss_with_synthetic_rows(implementation):
    x, y, proxies = batch(B=10, D=7, C=4, seed=2)
    synthetic = torch.randn(12, 7, dtype=torch.float64)
    synthetic_labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 1, 2])  # class 3 has no synthetic positive
    fn = lambda a, p, z: see_cuda.proxy_anchor_loss_with_synthetic(
        a, y, p, z, synthetic_labels, lam=0.4, alpha=8.0, implementation=implementation)
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(), proxies.requires_grad_(), synthetic.requires_grad_()))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_see_gradient_is_that_of_its_synthetic_points_held_fixed(implementation):
    """With detached synthetic points (the original), the SEE loss's gradient is,
    by definition, that of PA(x) + λ·PA(Z) with Z held constant: gradcheck cannot
    see a detach, so it checks that function (above) and this checks the tie."""
    x, y, proxies = batch(B=12, D=9, C=4, seed=3)
    noise = torch.randn(12, 3, 9, dtype=torch.float64)
    got = see_and_grads(implementation, x, y, proxies, n_expansion=4, lam=0.4, ratio=0.5, noise=noise)
    selected = see_cuda.select_for_expansion(reference.positive_cosines(x, y, proxies), "fraction", 0.5, 0.0)
    Z = see_cuda.spherical_expansion(x[selected], proxies[y[selected]], 4, noise=noise[selected],
                                     implementation=implementation).reshape(-1, 9)
    xx, pp = x.clone().requires_grad_(), proxies.clone().requires_grad_()
    fixed = see_cuda.proxy_anchor_loss_with_synthetic(xx, y, pp, Z, y[selected].repeat_interleave(4), 0.4,
                                                      implementation=implementation)
    expected = (fixed, *torch.autograd.grad(fixed, (xx, pp)))
    # The fused loss rebuilds Z itself (its frames by Cholesky QR, not the
    # expansion op's Gram-Schmidt), equal to Z to rounding; a gradient leaking
    # through Z would differ at order 1.
    rtol, atol = (1e-12, 1e-14) if implementation == "reference" else (1e-10, 1e-12)
    for mine, theirs in zip(got, expected):
        torch.testing.assert_close(mine, theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradcheck_wrt_embeddings_through_the_expansion(implementation):
    x, y, proxies = batch(B=10, D=7, C=4, seed=2)
    noise = torch.randn(10, 2, 7, dtype=torch.float64)
    fn = lambda a: see_cuda.fused_see_loss(a, y, proxies, n_expansion=3, lam=0.4, ratio=0.5, alpha=8.0, noise=noise,
                                            detach_synthetic=False, implementation=implementation)
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(),))


@requires_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_draws_that_defeat_cholesky_qr_fall_back_to_gram_schmidt(dtype):
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


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_equal_cosines_are_selected_in_batch_order(implementation):
    """Rows with one cosine: the first ones in the batch are expanded, each with its own draws."""
    x, y, proxies = batch(B=8, D=6, C=2, seed=8)
    x = x[:1].expand(8, -1).clone()
    y = torch.zeros(8, dtype=torch.int64)
    noise = torch.randn(8, 2, 6, dtype=torch.float64)
    got = see_and_grads(implementation, x, y, proxies, n_expansion=3, ratio=0.25, noise=noise)
    synthetic = see_cuda.spherical_expansion(x[:2], proxies[y[:2]], 3, noise=noise[:2], implementation="reference")
    fixed = see_cuda.proxy_anchor_loss_with_synthetic(x, y, proxies, synthetic.reshape(6, 6), y[:6], 0.2,
                                                      implementation="reference")
    torch.testing.assert_close(got[0], fixed, rtol=1e-10, atol=1e-12)


@requires_cpu_kernels
@settings(max_examples=50, deadline=None)
@given(problem=loss_problems())
def test_fused_matches_reference_float64(problem):
    x, y, proxies, n, ratio = problem
    kwargs = dict(n_expansion=n, ratio=ratio, lam=0.3)
    expected = see_and_grads("reference", x, y, proxies, generator=torch.Generator().manual_seed(5), **kwargs)
    fused = see_and_grads("fused", x, y, proxies, generator=torch.Generator().manual_seed(5), **kwargs)
    # Relative to each tensor's scale: a gradient entry that is a near-cancelling
    # sum of terms exp(alpha s) carries their rounding, ~1e-16 of the largest.
    for mine, theirs in zip(fused, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10 * theirs.abs().max().item())


@requires_cpu_kernels
@pytest.mark.parametrize("shape", [(180, 128, 500), (90, 64, 40), (17, 40, 1)])
def test_fused_matches_reference_float32(shape):
    x, y, proxies = batch(*shape, seed=3, dtype=torch.float32)
    # One set of draws for both (a generator gives other numbers in float32 and float64).
    noise = torch.randn(shape[0], 15, shape[1], dtype=torch.float64)
    expected = see_and_grads("reference", x.double(), y, proxies.double(), noise=noise)
    fused = see_and_grads("fused", x, y, proxies, noise=noise.float())
    for mine, theirs in zip(fused, expected):
        torch.testing.assert_close(mine.double(), theirs, rtol=1e-5, atol=1e-5 * theirs.detach().abs().max().item())


@requires_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_half_precision_within_the_error_of_torch_in_that_precision(dtype):
    x, y, proxies = batch(64, 32, 12, seed=4, dtype=torch.float32)
    x_low, p_low = x.to(dtype), proxies.to(dtype)
    seed = lambda: torch.Generator().manual_seed(2)
    ref32 = see_and_grads("reference", x_low.float(), y, p_low.float(), generator=seed())
    torch_low = see_and_grads("reference", x_low, y, p_low, generator=seed())
    fused = see_and_grads("fused", x_low, y, p_low, generator=seed())
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert mine.dtype == dtype
        bound = 2 * (low.float() - exact).abs() + 1e-3 * exact.abs().max()
        assert ((mine.float() - exact).abs() <= bound).all()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_mixed_precision_embeddings_with_float32_proxies(implementation):
    x, y, proxies = batch(dtype=torch.float32)
    loss, gx, gp = see_and_grads(implementation, x.to(torch.bfloat16), y, proxies, generator=torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and gx.dtype == torch.bfloat16 and gp.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(gx.float()).all() and torch.isfinite(gp).all()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_nothing_selected_is_plain_proxy_anchor(implementation):
    x, y, proxies = batch()
    pa = see_cuda.proxy_anchor_loss(x, y, proxies, implementation=implementation)
    for kwargs in (dict(ratio=0.0), dict(mode="threshold", threshold=1.5)):
        loss, stats = see_cuda.fused_see_loss(x, y, proxies, return_stats=True, implementation=implementation, **kwargs)
        torch.testing.assert_close(loss, pa)
        assert stats.num_expanded == 0 and stats.num_synthetic == 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_stats_report_the_selection(implementation):
    x, y, proxies = batch(B=45)
    _, stats = see_cuda.fused_see_loss(x, y, proxies, n_expansion=4, ratio=0.4, return_stats=True,
                                       implementation=implementation)
    assert stats.num_expanded == 18 and stats.num_synthetic == 72
    torch.testing.assert_close(stats.mean_positive_cosine, reference.positive_cosines(x, y, proxies).mean())
    _, stats = see_cuda.fused_see_loss(x, y, proxies, mode="threshold", threshold=-1.0, return_stats=True,
                                       implementation=implementation)
    assert stats.num_expanded == 45


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_degenerate_batches_are_finite(implementation):
    proxies = torch.randn(3, 6, dtype=torch.float64)
    cases = [
        (proxies[[0, 1, 1, 2]] * 2.0, torch.tensor([0, 1, 1, 2])),  # samples equal to their proxies
        (torch.randn(1, 6, dtype=torch.float64), torch.tensor([2])),  # B = 1
    ]
    for x, y in cases:
        loss, gx, gp = see_and_grads(implementation, x, y, proxies, n_expansion=4, ratio=1.0)
        assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gp).all()
    loss, gx, gp = see_and_grads(implementation, torch.randn(5, 6, dtype=torch.float64), torch.zeros(5, dtype=torch.int64),
                                 proxies[:1], n_expansion=4, ratio=1.0)  # C = 1: no negatives anywhere
    assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gp).all()


@requires_cpu_kernels
def test_fused_is_deterministic_across_runs_and_thread_counts():
    x, y, proxies = batch(180, 128, 300, seed=6, dtype=torch.float32)
    results = []
    for threads in (1, 2, 2):
        torch.set_num_threads(threads)
        results.append(see_and_grads("fused", x, y, proxies, generator=torch.Generator().manual_seed(9)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


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


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_threshold_is_compared_in_the_precision_of_the_cosines(implementation):
    """A threshold a hair above a float32 cosine rounds to it, as PyTorch compares
    a float32 tensor with a Python float: that sample is expanded."""
    x = torch.zeros(3, 8)
    x[0, :2] = torch.tensor([3.0, 4.0])  # cosine 3/5 with the proxy e_0, exactly 0.6f in float32
    x[1, :2] = torch.tensor([1.0, 4.0])
    x[2, :2] = torch.tensor([-3.0, 4.0])
    proxies = torch.eye(2, 8)
    y = torch.zeros(3, dtype=torch.int64)
    cosine = float(torch.tensor(0.6, dtype=torch.float32))
    _, stats = see_cuda.fused_see_loss(x, y, proxies, n_expansion=3, mode="threshold", threshold=cosine + 1e-9,
                                       return_stats=True, implementation=implementation)
    assert stats.num_expanded == 1
