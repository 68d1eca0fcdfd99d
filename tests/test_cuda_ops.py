"""The CUDA kernels: against the reference and the CPU kernels, gradients, low precision, no host syncs, CUDA graphs.

Every test needs a CUDA device and an install built with the CUDA kernels
(SEE_CUDA_BUILD=cuda pip install --no-build-isolation -e .); without them the
module is skipped. Inputs are drawn on the CPU and copied, so that the CUDA
kernels, the CPU kernels and the reference see the same numbers.
"""
import pytest
import torch

import see_cuda
from see_cuda import reference

HAVE_CUDA_KERNELS = torch.cuda.is_available() and see_cuda.backends()["cuda"]

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAVE_CUDA_KERNELS, reason="needs a CUDA device and see_cuda built with its CUDA kernels"),
]

RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}
LOW_PRECISION = [torch.float16, torch.bfloat16]


def draw(*shape, seed, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_close_scaled(got, expected, rtol, min_scale=0.0):
    """Entrywise rtol, plus rtol times the largest entry (at least min_scale): single
    entries can come from cancelling sums, whose error follows the summands' size."""
    got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    scale = max(expected.abs().max().item() if expected.numel() else 0.0, min_scale)
    torch.testing.assert_close(got, expected, rtol=rtol, atol=rtol * scale + 1e-300)


def assert_within_low_precision_error(fused, torch_low, ref32):
    """|fused - ref32| <= 2 |torch_low - ref32| + eps, eps the dtype's resolution at the tensor's scale."""
    assert fused.dtype == torch_low.dtype
    exact = ref32.detach().float()
    eps = torch.finfo(fused.dtype).eps * exact.abs().max()
    bound = 2 * (torch_low.detach().float() - exact).abs() + eps
    assert ((fused.detach().float() - exact).abs() <= bound).all()


# ---------------------------------------------------------------- MMD centers
@pytest.mark.parametrize("num_centers, dim", [(1, 1), (2, 3), (17, 16), (17, 40), (65, 64)])
def test_mmd_centers_match_reference_and_cpu(num_centers, dim):
    got = see_cuda.mmd_centers(num_centers, dim, radius=1.5, device="cuda", implementation="fused")
    assert got.device.type == "cuda" and got.dtype == torch.float64 and got.shape == (num_centers, dim)
    expected = reference.mmd_centers(num_centers, dim, 1.5)
    cpu = see_cuda.mmd_centers(num_centers, dim, radius=1.5, implementation="fused")
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.cpu(), cpu, rtol=1e-14, atol=1e-14)


# ---------------------------------------------------------------- expansion
# (k, D, n): frames in shared memory, frames in global scratch (D = 2048, n = 64
# is 0.5 MB in float32), and n = 200, whose small scratch leaves shared memory too.
EXPANSION_SIZES = [(5, 24, 4), (3, 128, 16), (4, 33, 1), (2, 600, 64), (2, 2048, 64), (3, 70, 69)]
EXPANSION_CASES = [(size, torch.float64) for size in EXPANSION_SIZES + [(2, 256, 200)]] + [
    (size, torch.float32) for size in EXPANSION_SIZES
]
# float32 Gram-Schmidt over up to 64 directions: the CPU suite's 2e-5 at unit scale.
EXPANSION_RTOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def expansion_problem(k, D, n, seed):
    return draw(k, D, seed=seed), draw(k, D, seed=seed + 1), draw(k, n - 1, D, seed=seed + 2)


def expansion_with_grad(device, dtype, z, w, noise, n, upstream, implementation="fused"):
    zz = z.to(device, dtype).requires_grad_()
    out = see_cuda.spherical_expansion(zz, w.to(device, dtype), n, noise=noise.to(device, dtype),
                                       implementation=implementation)
    (grad,) = torch.autograd.grad((out * upstream.to(device, dtype)).sum(), zz)
    return out, grad


@pytest.mark.parametrize("size, dtype", EXPANSION_CASES)
def test_expansion_matches_reference_and_cpu(size, dtype):
    k, D, n = size
    z, w, noise = expansion_problem(k, D, n, seed=k + D + n)
    upstream = draw(k, n, D, seed=7)
    got = expansion_with_grad("cuda", dtype, z, w, noise, n, upstream)
    assert got[0].device.type == "cuda" and got[0].dtype == dtype
    # The truth: the reference in float64 on the same (rounded) inputs.
    rounded = [v.to(dtype).double() for v in (z, w, noise)]
    expected = expansion_with_grad("cuda", torch.float64, *rounded, n, upstream, implementation="reference")
    cpu = expansion_with_grad("cpu", dtype, z, w, noise, n, upstream)
    for mine, truth, theirs in zip(got, expected, cpu):
        assert_close_scaled(mine, truth, EXPANSION_RTOL[dtype])
        assert_close_scaled(mine, theirs, EXPANSION_RTOL[dtype])


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_expansion_source_on_the_proxy_axis_gives_the_axis_and_no_nan(sign):
    w = draw(4, 10, seed=3).cuda()
    z = (sign * w * 3.0).requires_grad_()
    noise = draw(4, 5, 10, seed=4).cuda()
    out = see_cuda.spherical_expansion(z, w, 6, noise=noise, implementation="fused")
    w_unit = reference.l2_normalize(w)
    torch.testing.assert_close(out, (sign * w_unit).unsqueeze(1).expand_as(out), rtol=0, atol=1e-7)
    (grad,) = torch.autograd.grad(out.sum(), z)
    assert torch.isfinite(grad).all()


def test_expansion_gradcheck():
    z = draw(3, 9, seed=0).cuda().requires_grad_()
    w, noise = draw(3, 9, seed=1).cuda(), draw(3, 4, 9, seed=2).cuda()
    assert torch.autograd.gradcheck(
        lambda q: see_cuda.spherical_expansion(q, w, 5, noise=noise, implementation="fused"), (z,)
    )


def test_expansion_empty_batch():
    z = torch.empty(0, 8, dtype=torch.float64, device="cuda")
    out = see_cuda.spherical_expansion(z, z, 3, noise=torch.empty(0, 2, 8, dtype=torch.float64, device="cuda"),
                                       implementation="fused")
    assert out.shape == (0, 3, 8)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_expansion_low_precision_within_the_error_of_torch_in_that_precision(dtype):
    k, D, n = 6, 32, 8
    z, w, noise = (v.to(dtype) for v in expansion_problem(k, D, n, seed=11))
    fused = see_cuda.spherical_expansion(z.cuda(), w.cuda(), n, noise=noise.cuda(), implementation="fused")
    torch_low = reference.spherical_expansion(z.cuda(), w.cuda(), n, noise.cuda())
    ref32 = reference.spherical_expansion(z.float().cuda(), w.float().cuda(), n, noise.float().cuda())
    assert_within_low_precision_error(fused, torch_low, ref32)


# ---------------------------------------------------------------- slerp
def slerp_problem(rows, D, seed, case):
    # Norm 10, as the CPU suite: x/sqrt(|x|^2 + 1e-12) is then unit to 5e-15.
    a, b = draw(rows, D, seed=seed), draw(rows, D, seed=seed + 1)
    a, b = 10 * a / a.norm(dim=-1, keepdim=True), 10 * b / b.norm(dim=-1, keepdim=True)
    t = torch.rand(rows, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64) * 1.4 - 0.2
    if case == "close":
        b = a + 1e-6 * b
    elif case == "antipodal":
        b = -a
    elif case == "equal":
        b = a.clone()
    return a, b, t


def slerp_with_grads(device, dtype, a, b, t, upstream, implementation="fused"):
    inputs = [v.to(device, dtype).requires_grad_() for v in (a, b, t)]
    out = see_cuda.slerp(*inputs, implementation=implementation)
    return (out, *torch.autograd.grad((out * upstream.to(device, dtype)).sum(), inputs))


# D = 3 rather than 2: random pairs in the plane come close to the antipode,
# where float32 angles lose digits as 1/(π - θ) (exact antipodes are a case of their own).
@pytest.mark.parametrize("case", ["random", "close", "antipodal", "equal"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("D", [3, 9, 300])
def test_slerp_matches_reference_and_cpu(case, dtype, D):
    rows = 37
    a, b, t = (v.to(dtype) for v in slerp_problem(rows, D, seed=D, case=case))
    upstream = draw(rows, D, seed=5)
    got = slerp_with_grads("cuda", dtype, a, b, t, upstream)
    expected = slerp_with_grads("cuda", torch.float64, a, b, t, upstream, implementation="reference")
    cpu = slerp_with_grads("cpu", dtype, a, b, t, upstream)
    # At θ = 0 exactly the angle is not differentiable: compare the values only.
    compared = 1 if case == "equal" else 4
    for mine, truth, theirs in list(zip(got, expected, cpu))[:compared]:
        # Unit scale: for close pairs dL/dt = g.(b̂ - â) + O(θ²) cancels between terms of size |g|.
        assert_close_scaled(mine, truth, RTOL[dtype], min_scale=1.0)
        assert_close_scaled(mine, theirs, RTOL[dtype], min_scale=1.0)


def test_slerp_gradcheck():
    a, b, t = slerp_problem(4, 6, seed=1, case="random")
    inputs = tuple(v.cuda().requires_grad_() for v in (a, b, t))
    assert torch.autograd.gradcheck(lambda p, q, r: see_cuda.slerp(p, q, r, implementation="fused"), inputs)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_slerp_low_precision_within_the_error_of_torch_in_that_precision(dtype):
    a, b, t = (v.to(dtype).cuda() for v in slerp_problem(64, 32, seed=3, case="random"))
    fused = see_cuda.slerp(a, b, t, implementation="fused")
    torch_low = reference.slerp(a, b, t)
    ref32 = reference.slerp(a.float(), b.float(), t.float())
    assert_within_low_precision_error(fused, torch_low, ref32)


# ---------------------------------------------------------------- Proxy-Anchor
def loss_problem(B, C, D, seed, unused_classes=0):
    y = torch.randint(0, max(1, C - unused_classes), (B,), generator=torch.Generator().manual_seed(seed))
    return draw(B, D, seed=seed + 1), y, draw(C, D, seed=seed + 2)


def pa_with_grads(device, dtype, x, y, proxies, implementation="fused", **kwargs):
    xx, pp = x.to(device, dtype).requires_grad_(), proxies.to(device, dtype).requires_grad_()
    loss = see_cuda.proxy_anchor_loss(xx, y.to(device), pp, implementation=implementation, **kwargs)
    return (loss, *torch.autograd.grad(loss, (xx, pp)))


# (B, C, D, classes without a positive); 64 needs the exact references in
# float32, 400 in float64 too.
PA_SIZES = [(9, 5, 5, 1), (1, 1, 3, 0), (40, 1, 8, 0), (64, 20, 32, 5), (180, 300, 64, 0), (500, 11318, 128, 0)]
PA_CASES = [(size, torch.float64, alpha) for size in PA_SIZES for alpha in (32.0, 400.0)] + [
    (size, torch.float32, alpha) for size in PA_SIZES for alpha in (32.0, 64.0)
]


@pytest.mark.parametrize("size, dtype, alpha", PA_CASES)
def test_proxy_anchor_matches_reference_and_cpu(size, dtype, alpha):
    B, C, D, unused = size
    # float32 cosines carry their rounding into the exponents times alpha.
    rtol = RTOL[dtype] * max(1.0, alpha / 32.0) if dtype == torch.float32 else RTOL[dtype]
    x, y, proxies = loss_problem(B, C, D, seed=B + C, unused_classes=unused)
    got = pa_with_grads("cuda", dtype, x, y, proxies, alpha=alpha)
    assert got[0].device.type == "cuda" and got[0].dtype == dtype and got[0].dim() == 0
    x_r, p_r = x.to(dtype).double(), proxies.to(dtype).double()
    expected = pa_with_grads("cuda", torch.float64, x_r, y, p_r, implementation="reference", alpha=alpha)
    cpu = pa_with_grads("cpu", dtype, x, y, proxies, alpha=alpha)
    for mine, truth, theirs in zip(got, expected, cpu):
        assert_close_scaled(mine, truth, rtol)
        assert_close_scaled(mine, theirs, rtol)


def test_proxy_anchor_gradcheck():
    x, _, proxies = loss_problem(9, 5, 5, seed=0)
    y = torch.tensor([0, 0, 1, 1, 1, 3, 3, 0, 1], device="cuda")
    inputs = (x.cuda().requires_grad_(), proxies.cuda().requires_grad_())
    assert torch.autograd.gradcheck(
        lambda a, p: see_cuda.proxy_anchor_loss(a, y, p, 6.0, 0.1, implementation="fused"), inputs
    )


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_proxy_anchor_low_precision_within_the_error_of_torch_in_that_precision(dtype):
    x, y, proxies = loss_problem(64, 20, 32, seed=4)
    x_low, p_low = x.to(dtype), proxies.to(dtype)
    fused = pa_with_grads("cuda", dtype, x_low, y, p_low)
    torch_low = pa_with_grads("cuda", dtype, x_low, y, p_low, implementation="reference")
    ref32 = pa_with_grads("cuda", torch.float32, x_low.float(), y, p_low.float(), implementation="reference")
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert_within_low_precision_error(mine, low, exact)


def pa_counting_invalid_rows_as_negatives(x, labels, proxies, alpha, margin):
    """Proxy-Anchor (reference formulas) where a row whose label is outside [0, C) has no positive."""
    C = proxies.shape[0]
    s = reference.l2_normalize(x) @ reference.l2_normalize(proxies).t()
    valid = labels.ge(0) & labels.lt(C)
    positive = torch.zeros_like(s, dtype=torch.bool)
    positive[valid] = torch.nn.functional.one_hot(labels[valid], C).bool()
    pos_term = reference._log1p_sum_exp(-alpha * (s - margin), positive)
    neg_term = reference._log1p_sum_exp(alpha * (s + margin), ~positive)
    num_positive_classes = positive.any(0).sum()
    if num_positive_classes == 0:
        return torch.zeros((), dtype=x.dtype)
    return pos_term.sum() / num_positive_classes + neg_term.sum() / C


def test_out_of_range_labels_stay_inside_the_tensors():
    # The public API checks label values on the CPU only; on the GPU the kernel
    # must not index outside its tensors for any label, and counts such a row
    # as a negative of every class.
    C, D, alpha, margin, lam = 4, 6, 32.0, 0.1, 0.2
    x, proxies, synthetic = draw(5, D, seed=1), draw(C, D, seed=2), draw(6, D, seed=3)
    labels = torch.tensor([0, 3, -1, 7, 2])
    synthetic_labels = torch.tensor([1, 1, 9, C, -5, 0])
    outputs = torch.ops.see_cuda.proxy_anchor_fused(
        x.cuda(), labels.cuda(), proxies.cuda(), synthetic.cuda(), synthetic_labels.cuda(), alpha, margin, lam,
        True, True,
    )
    torch.cuda.synchronize()
    assert all(torch.isfinite(t).all() for t in outputs)
    expected = pa_counting_invalid_rows_as_negatives(x, labels, proxies, alpha, margin) + lam * (
        pa_counting_invalid_rows_as_negatives(synthetic, synthetic_labels, proxies, alpha, margin)
    )
    torch.testing.assert_close(outputs[0].cpu(), expected, rtol=1e-10, atol=0)


# ---------------------------------------------------------------- the SEE loss
def see_with_grads(device, dtype, x, y, proxies, noise, implementation="fused", **kwargs):
    xx, pp = x.to(device, dtype).requires_grad_(), proxies.to(device, dtype).requires_grad_()
    loss = see_cuda.fused_see_loss(xx, y.to(device), pp, noise=noise.to(device, dtype),
                                   implementation=implementation, **kwargs)
    return (loss, *torch.autograd.grad(loss, (xx, pp)))


@pytest.mark.parametrize("detach_synthetic", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_see_loss_matches_reference_and_cpu(detach_synthetic, dtype):
    B, C, D, n = 48, 12, 32, 8
    x, y, proxies = loss_problem(B, C, D, seed=21, unused_classes=2)
    noise = draw(B, n - 1, D, seed=24)  # loss_problem drew x from seed 22: a draw equal to x lies in its frame
    options = dict(n_expansion=n, lam=0.2, ratio=0.4, detach_synthetic=detach_synthetic)
    got = see_with_grads("cuda", dtype, x, y, proxies, noise, **options)
    rounded = [v.to(dtype).double() for v in (x, proxies, noise)]
    expected = see_with_grads("cuda", torch.float64, rounded[0], y, rounded[1], rounded[2],
                              implementation="reference", **options)
    cpu = see_with_grads("cpu", dtype, x, y, proxies, noise, **options)
    for mine, truth, theirs in zip(got, expected, cpu):
        assert_close_scaled(mine, truth, RTOL[dtype])
        assert_close_scaled(mine, theirs, RTOL[dtype])


def test_see_loss_gradcheck_through_the_expansion():
    """Without detaching, w.r.t. the embeddings. The expansion's axis is always the
    detached proxy, and a detached loss ignores how its points move, both of which
    finite differences would see: tests/test_see_loss.py checks those gradients
    against the loss with its points held fixed."""
    B, C, D, n = 10, 4, 7, 3
    x, y, proxies = loss_problem(B, C, D, seed=31)
    noise, y, proxies = draw(B, n - 1, D, seed=34).cuda(), y.cuda(), proxies.cuda()
    assert torch.autograd.gradcheck(
        lambda a: see_cuda.fused_see_loss(a, y, proxies, n_expansion=n, ratio=0.5, alpha=6.0, noise=noise,
                                          detach_synthetic=False, implementation="fused"),
        (x.cuda().requires_grad_(),),
    )


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_see_loss_low_precision_within_the_error_of_torch_in_that_precision(dtype):
    B, C, D, n = 64, 20, 32, 4
    x, y, proxies = loss_problem(B, C, D, seed=41)
    noise = draw(B, n - 1, D, seed=44)
    x_low, p_low, noise_low = x.to(dtype), proxies.to(dtype), noise.to(dtype)
    # Every sample expanded: no selection boundary that rounding could move.
    options = dict(n_expansion=n, ratio=1.0)
    fused = see_with_grads("cuda", dtype, x_low, y, p_low, noise_low, **options)
    torch_low = see_with_grads("cuda", dtype, x_low, y, p_low, noise_low, implementation="reference", **options)
    ref32 = see_with_grads("cuda", torch.float32, x_low.float(), y, p_low.float(), noise_low.float(),
                           implementation="reference", **options)
    for mine, low, exact in zip(fused, torch_low, ref32):
        assert_within_low_precision_error(mine, low, exact)


# ---------------------------------------------------------------- no host syncs, CUDA graphs
def see_problem_on_cuda(B=32, C=10, D=24, n=4, dtype=torch.float32, seed=51):
    x, y, proxies = loss_problem(B, C, D, seed=seed)
    noise = draw(B, n - 1, D, seed=seed + 3)
    return (x.to("cuda", dtype).requires_grad_(), y.cuda(), proxies.to("cuda", dtype).requires_grad_(),
            noise.to("cuda", dtype))


@pytest.mark.parametrize("with_generator", [False, True])
def test_fraction_mode_see_loss_does_not_synchronize(with_generator):
    x, y, proxies, noise = see_problem_on_cuda()
    kwargs = dict(n_expansion=4, ratio=0.4, mode="fraction", implementation="fused")
    if with_generator:
        kwargs["generator"] = torch.Generator(device="cuda").manual_seed(0)
    else:
        kwargs["noise"] = noise
    see_cuda.fused_see_loss(x, y, proxies, **kwargs).backward()  # first-call initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = see_cuda.fused_see_loss(x, y, proxies, **kwargs)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert torch.isfinite(loss)


def test_cuda_graph_replays_forward_and_backward():
    x, y, proxies, noise = see_problem_on_cuda()

    def step():
        loss = see_cuda.fused_see_loss(x, y, proxies, n_expansion=4, ratio=0.4, noise=noise, implementation="fused")
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
