"""The SEE expansion (docs/method.md §3): invariants, oracles, kernels vs reference on each device, gradients."""
import pytest
import torch
from hypothesis import assume, given, settings

import see_cuda
from see_cuda import ops, reference

from comparisons import assert_close_scaled, assert_within_low_precision_error, draw, leaf
from conftest import DEVICES, IMPLEMENTATIONS, requires_cpu_kernels
from oracles.original_see import original_expansion
from strategies import expansion_problems

UNIT_ROUNDOFF = {torch.float64: 2.0**-53, torch.float32: 2.0**-24}
# Rounding of a well-conditioned frame: float32 Gram-Schmidt / Cholesky QR over
# up to 64 directions of length up to 2048 stays within 2e-5 at unit scale.
BASE_RTOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def geometry(z, w):
    z, w = reference.l2_normalize(z), reference.l2_normalize(w)
    a = (z * w).sum(-1)
    M = a.unsqueeze(-1) * w
    return z, w, a, M, z - M


def frame_condition_numbers(z, w, noise):
    """Per sample, κ = σ_max/σ_min of A = [ŵ, ẑ, ĝ_1 .. ĝ_{n-1}] (unit columns), 1 where n = 1."""
    if noise.shape[1] == 0:
        return torch.ones(z.shape[0], dtype=torch.float64)
    columns = torch.cat([reference.l2_normalize(v.double().cpu()) for v in (w.unsqueeze(1), z.unsqueeze(1), noise)], 1)
    singular = torch.linalg.svdvals(columns)
    return singular[:, 0] / singular[:, -1]


def expansion_rtol(dtype, z, w, noise):
    """The tolerance of one implementation in `dtype` against the exact frame, values and gradients.

    The frame is the Q factor of A = [ŵ, ẑ, draws]. Gram-Schmidt with
    reorthogonalisation and Cholesky QR2 are backward stable: the computed Q
    is exact for A + ΔA with ‖ΔA‖ ≈ u‖A‖ per step. To first order the Q factor,
    and the QR backward that carries the gradient (its triangular solves with
    R), move by κ(A)·‖ΔA‖/‖A‖ (Sun's QR perturbation bound), so that rounding
    is amplified by κ(A) = σ_max/σ_min. Random draws keep κ near 1 while D ≫ n;
    at D = n + 1 the last draw keeps a single direction outside the span of the
    others, σ_min shrinks like 1/D and κ reaches ~10³ (e.g. k=3, D=70, n=69
    below: κ = 999, the float32 gradient then errs by 5.4e-6 = 91 u against
    κu = 6e-5). Bound: BASE_RTOL for the well-conditioned rounding plus κ·u.
    Two implementations, each within it of the truth, differ by up to twice it.
    """
    kappa = frame_condition_numbers(z, w, noise).max().item()
    return BASE_RTOL[dtype] + kappa * UNIT_ROUNDOFF[dtype]


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@settings(max_examples=40, deadline=None)
@given(problem=expansion_problems(scales=(1.0, 50.0)))
def test_synthetic_points_keep_the_invariants(implementation, device, problem):
    z, w, noise, n = problem
    out = see_cuda.spherical_expansion(z.to(device), w.to(device), n, noise=noise.to(device),
                                       implementation=implementation).cpu()
    assert out.shape == (z.shape[0], n, z.shape[1])
    _, w_unit, a, M, r = geometry(z, w)
    tol = dict(rtol=0, atol=1e-10)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones_like(out[..., 0]), **tol)  # on the sphere
    torch.testing.assert_close((out * w_unit.unsqueeze(1)).sum(-1), a.unsqueeze(1).expand(-1, n), **tol)  # same cosine
    offsets = out - M.unsqueeze(1)
    rho_sq = (r * r).sum(-1)
    gram = offsets @ offsets.transpose(1, 2)
    expected = (-rho_sq / n)[:, None, None].expand(-1, n, n).clone()
    expected.diagonal(dim1=1, dim2=2).copy_(rho_sq.unsqueeze(1).expand(-1, n))
    torch.testing.assert_close(gram, expected, **tol)  # a regular simplex with the source ...
    torch.testing.assert_close((offsets * r.unsqueeze(1)).sum(-1), (-rho_sq / n).unsqueeze(1).expand(-1, n), **tol)


def frame_condition(z, w, noise):
    """Largest condition number over samples of [ŵ, ẑ, noise] with unit columns.

    Single-pass classical Gram-Schmidt (the original's) loses about this factor
    of accuracy; the reference's two passes do not, so the two are compared
    only where the original can be trusted."""
    columns = torch.cat([reference.l2_normalize(w).unsqueeze(1), reference.l2_normalize(z).unsqueeze(1),
                         reference.l2_normalize(noise)], dim=1)
    singular = torch.linalg.svdvals(columns)
    return (singular[:, 0] / singular[:, -1]).max().item()


@settings(max_examples=30, deadline=None)
@given(problem=expansion_problems())
def test_reference_matches_the_per_sample_original(problem):
    z, w, noise, n = problem
    assume(frame_condition(z, w, noise) < 1e3)
    torch.testing.assert_close(
        reference.spherical_expansion(z, w, n, noise), original_expansion(z, w, n, noise), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=40, deadline=None)
@given(problem=expansion_problems())
def test_fused_matches_reference_in_float64_and_float32(device, problem):
    z, w, noise, n = problem
    expected = reference.spherical_expansion(z, w, n, noise)
    fused = see_cuda.spherical_expansion(z.to(device), w.to(device), n, noise=noise.to(device), implementation="fused")
    torch.testing.assert_close(fused.cpu(), expected, rtol=0, atol=1e-10)
    z32, w32, noise32 = (v.float() for v in (z, w, noise))
    fused32 = see_cuda.spherical_expansion(z32.to(device), w32.to(device), n, noise=noise32.to(device),
                                           implementation="fused")
    expected32 = reference.spherical_expansion(z32.double(), w32.double(), n, noise32.double())
    atol = expansion_rtol(torch.float32, z32, w32, noise32)  # the points are unit vectors: scale 1
    torch.testing.assert_close(fused32.cpu().double(), expected32, rtol=0, atol=atol)


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=25, deadline=None)
@given(problem=expansion_problems(max_k=3, max_dim=12))
def test_fused_gradient_matches_reference(device, problem):
    z, w, noise, n = problem
    upstream = torch.randn(z.shape[0], n, z.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    grads = []
    for implementation, where in (("reference", "cpu"), ("fused", device)):
        zz = leaf(z, where)
        out = see_cuda.spherical_expansion(zz, w.to(where), n, noise=noise.to(where), implementation=implementation)
        grads.append(torch.autograd.grad((out * upstream.to(where)).sum(), zz)[0].cpu())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_gradcheck_wrt_sources(implementation, device):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 9, dtype=torch.float64, generator=g).to(device).requires_grad_()
    w = torch.randn(3, 9, dtype=torch.float64, generator=g).to(device)
    noise = torch.randn(3, 4, 9, dtype=torch.float64, generator=g).to(device)
    assert torch.autograd.gradcheck(
        lambda q: see_cuda.spherical_expansion(q, w, 5, noise=noise, implementation=implementation), (z,)
    )


def test_reference_gradcheck_wrt_proxies_too():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 7, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(2, 7, dtype=torch.float64, generator=g, requires_grad=True)
    noise = torch.randn(2, 3, 7, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda p, q: reference.spherical_expansion(p, q, 4, noise), (z, w))


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_source_on_the_proxy_axis_gives_the_axis_and_no_nan(implementation, device, sign):
    w = draw(4, 10, seed=3).to(device)
    z = (sign * w * 3.0).requires_grad_()
    noise = draw(4, 5, 10, seed=4).to(device)
    out = see_cuda.spherical_expansion(z, w, 6, noise=noise, implementation=implementation)
    w_unit = reference.l2_normalize(w)
    torch.testing.assert_close(out, (sign * w_unit).unsqueeze(1).expand_as(out), rtol=0, atol=1e-7)
    (grad,) = torch.autograd.grad(out.sum(), z)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_one_synthetic_point_is_the_reflection_about_the_proxy(implementation, device):
    z, w = draw(5, 4, seed=5), draw(5, 4, seed=6)
    out = see_cuda.spherical_expansion(z.to(device), w.to(device), 1, noise=torch.empty(5, 0, 4, dtype=torch.float64,
                                       device=device), implementation=implementation).cpu()
    z_unit, w_unit, a, M, r = geometry(z, w)
    torch.testing.assert_close(out[:, 0], M - r, rtol=0, atol=1e-12)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_same_generator_seed_same_points(implementation, device):
    z, w = draw(6, 32, seed=1, dtype=torch.float32).to(device), draw(6, 32, seed=2, dtype=torch.float32).to(device)

    def expand(seed):
        return see_cuda.spherical_expansion(z, w, 8, generator=torch.Generator(device=device).manual_seed(seed),
                                            implementation=implementation)

    first = expand(7)
    assert torch.equal(first, expand(7))
    assert not torch.equal(first, expand(8))


@pytest.mark.parametrize("device", DEVICES)
def test_generator_draws_are_the_reference_stream_within_its_ulp_bound(device):
    """The kernels draw with the compiled stream, the reference with see_cuda.noise: the same numbers
    to the stream's bound (tests/test_noise.py), so the points agree to the expansion's rounding."""
    z, w = draw(6, 32, seed=1).to(device), draw(6, 32, seed=2).to(device)
    fused = see_cuda.spherical_expansion(z, w, 8, generator=torch.Generator(device=device).manual_seed(7),
                                         implementation="fused")
    expected = see_cuda.spherical_expansion(z, w, 8, generator=torch.Generator(device=device).manual_seed(7),
                                            implementation="reference")
    assert_close_scaled(fused, expected, BASE_RTOL[torch.float64], min_scale=1.0)


@requires_cpu_kernels
def test_fused_is_identical_across_thread_counts():
    # Each sample's frame is one thread's work, with no reduction across threads.
    z, w, noise = torch.randn(40, 64), torch.randn(40, 64), torch.randn(40, 15, 64)
    outputs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        outputs.append(see_cuda.spherical_expansion(z, w, 16, noise=noise, implementation="fused"))
    assert torch.equal(outputs[0], outputs[1])


def test_proxies_that_need_a_gradient_get_it_through_the_reference():
    z = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    out = see_cuda.spherical_expansion(z, w, 4, noise=torch.randn(3, 3, 8, dtype=torch.float64))
    (grad_w,) = torch.autograd.grad(out.sum(), w)
    assert torch.isfinite(grad_w).all() and grad_w.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(z=torch.randn(3, 4), w=torch.randn(3, 4), n_expansion=4), ValueError, "n_expansion"),
        (dict(z=torch.randn(3, 8), w=torch.randn(3, 8), n_expansion=0), ValueError, "n_expansion"),
        (dict(z=torch.randn(3, 8), w=torch.randn(2, 8), n_expansion=2), ValueError, "w"),
        (dict(z=torch.randn(3, 8), w=torch.randn(3, 8), n_expansion=3, noise=torch.randn(3, 3, 8)), ValueError,
         "noise"),
        (dict(z=torch.randn(8), w=torch.randn(8), n_expansion=2), ValueError, "z"),
        (dict(z=torch.ones(3, 8, dtype=torch.int64), w=torch.randn(3, 8), n_expansion=2), TypeError, "z"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, name):
    with pytest.raises(error, match=name):
        see_cuda.spherical_expansion(**kwargs)


# (k, D, n): frames in shared memory on a GPU, frames in global scratch (D = 2048,
# n = 64 is 0.5 MB in float32), n = 200, whose small scratch leaves shared memory
# too, and D = n + 1, the worst-conditioned frame. The large ones run on a GPU only.
EXPANSION_SIZES = [(5, 24, 4), (3, 128, 16), (4, 33, 1), (3, 70, 69)]
GPU_SIZES = [(2, 600, 64), (2, 2048, 64)]
EXPANSION_CASES = [
    pytest.param(device.values[0], size, dtype, marks=device.marks, id=f"{device.values[0]}-{size}-{dtype}")
    for device in DEVICES
    for dtype in (torch.float64, torch.float32)
    for size in EXPANSION_SIZES + (GPU_SIZES + ([(2, 256, 200)] if dtype == torch.float64 else [])
                                   if device.values[0] == "cuda" else [])
]


def expansion_problem(k, D, n, seed):
    return draw(k, D, seed=seed), draw(k, D, seed=seed + 1), draw(k, n - 1, D, seed=seed + 2)


def expansion_with_grad(device, dtype, z, w, noise, n, upstream, implementation="fused"):
    zz = leaf(z, device, dtype)
    out = see_cuda.spherical_expansion(zz, w.to(device, dtype), n, noise=noise.to(device, dtype),
                                       implementation=implementation)
    (grad,) = torch.autograd.grad((out * upstream.to(device, dtype)).sum(), zz)
    return out, grad


@pytest.mark.parametrize("device, size, dtype", EXPANSION_CASES)
def test_expansion_matches_reference_and_cpu(device, size, dtype):
    k, D, n = size
    z, w, noise = expansion_problem(k, D, n, seed=k + D + n)
    upstream = draw(k, n, D, seed=7)
    got = expansion_with_grad(device, dtype, z, w, noise, n, upstream)
    assert got[0].device.type == device and got[0].dtype == dtype
    # The truth: the reference in float64 on the same (rounded) inputs.
    rounded = [v.to(dtype).double() for v in (z, w, noise)]
    expected = expansion_with_grad(device, torch.float64, *rounded, n, upstream, implementation="reference")
    cpu = expansion_with_grad("cpu", dtype, z, w, noise, n, upstream)
    rtol = expansion_rtol(dtype, *rounded)
    for mine, truth, theirs in zip(got, expected, cpu):
        assert_close_scaled(mine, truth, rtol)
        assert_close_scaled(mine, theirs, 2 * rtol)


@pytest.mark.parametrize("device", DEVICES)
def test_expansion_empty_batch(device):
    z = torch.empty(0, 8, dtype=torch.float64, device=device)
    out = see_cuda.spherical_expansion(z, z, 3, noise=torch.empty(0, 2, 8, dtype=torch.float64, device=device),
                                       implementation="fused")
    assert out.shape == (0, 3, 8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_expansion_low_precision_within_the_error_of_torch_in_that_precision(device, dtype):
    k, D, n = 6, 32, 8
    z, w, noise = (v.to(device, dtype) for v in expansion_problem(k, D, n, seed=11))
    fused = see_cuda.spherical_expansion(z, w, n, noise=noise, implementation="fused")
    torch_low = reference.spherical_expansion(z, w, n, noise)
    ref32 = reference.spherical_expansion(z.float(), w.float(), n, noise.float())
    assert_within_low_precision_error(fused, torch_low, ref32)


@pytest.mark.parametrize("device", DEVICES)
def test_unchecked_nan_axis_gives_nan_points_not_a_crash(device):
    """What the loss's composed path feeds the op for a row whose label was out of range
    (the public function rejects a NaN axis on the CPU, so the op is called directly)."""
    z, w, noise = (v.to(device) for v in expansion_problem(3, 12, 4, seed=3))
    w[1] = float("nan")
    out = ops.spherical_expansion(z, w, noise)
    assert torch.isnan(out[1]).all() and torch.isfinite(out[[0, 2]]).all()


# ---------------------------------------------------------------- near the proxy axis
def near_axis_rtol(dtype, n, D, kappa, rho):
    """Relative error bound of the gradient w.r.t. a source whose residual r = ẑ - aŵ has norm ρ.

    The expansion is not differentiable on the axis: there its points move as
    ρ times directions that depend on u = r/ρ alone, so its Jacobian near the
    axis depends on u, which rounding decides when ρ is small. To first order:
    r is computed with an error of at most 3(D + 4)u (ẑ, ŵ and a = ẑ·ŵ each carry
    (D + 2)u), which turns u by at most 2·3(D + 4)u/ρ; the frame, the Q factor of
    [ŵ, u, draws], moves by κ times that, and its derivative in u, which the
    backward applies, by κ² times; the gradient sums n + 1 frame vectors of
    weight <= 1. Hence BASE_RTOL + 2(n + 1)·κ²·6(D + 4)u/ρ. Once ρ is within a
    few hundred rounding units of 0 the bound passes 1: the gradient is then
    defined by rounding (bounded by its own scale, not by any implementation's
    answer), in float32 as in float64.
    """
    return BASE_RTOL[dtype] + 2 * (n + 1) * kappa**2 * 6 * (D + 4) * UNIT_ROUNDOFF[dtype] / rho


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("D", [6, 32])
@pytest.mark.parametrize("rho", [1e-1, 1e-3, 1e-5, 0.0])
def test_float32_gradient_near_the_axis_is_within_rounding_over_rho(implementation, device, D, rho):
    """Near the axis the float32 gradient is rounding over ρ, whichever implementation computes it. With
    ρ = 0 before rounding the float32 inputs are a few u off the axis: float32 takes them as on it (§3.6)
    while float64 does not, and the bound, above 1 there, holds all the same."""
    k, n = 8, 4
    w, v = draw(k, D, seed=31), draw(k, D, seed=32)
    w_unit = w / w.norm(dim=1, keepdim=True)
    v = v - (v * w_unit).sum(1, keepdim=True) * w_unit
    v = v / v.norm(dim=1, keepdim=True)
    z = 2.0 * (w_unit * (1 - rho**2) ** 0.5 + rho * v)
    noise, upstream = draw(k, n - 1, D, seed=33), draw(k, n, D, seed=34)
    z, w, noise = (t.float().double() for t in (z, w, noise))  # the float32 inputs, exactly
    zz = z.clone().requires_grad_()
    truth = torch.autograd.grad((reference.spherical_expansion(zz, w, n, noise) * upstream).sum(), zz)[0]
    got = expansion_with_grad(device, torch.float32, z, w, noise, n, upstream, implementation=implementation)[1]
    assert torch.isfinite(got).all()
    residual = geometry(z, w)[4].norm(dim=1)  # ρ of the rounded inputs, in float64
    kappa = frame_condition_numbers(z, w, noise)
    bound = near_axis_rtol(torch.float32, n, D, kappa, residual)
    error = (got.double().cpu() - truth).norm(dim=1) / truth.norm(dim=1)
    assert (error <= bound).all(), (error / bound).max()


def draw_in_the_span(kind, z, w, noise):
    """noise with sample 1's last draw in the span of the frame before it (ŵ, u and the earlier draws)."""
    noise = noise.clone()
    noise[1, -1] = {"proxy": w[1], "source": z[1], "repeated": noise[1, 0], "scaled-proxy": -0.5 * w[1]}[kind]
    return noise


def expansion_and_gradient(implementation, device, dtype, z, w, noise, n, upstream):
    zz = leaf(z, device, dtype)
    out = see_cuda.spherical_expansion(zz, w.to(device, dtype), n, noise=noise.to(device, dtype),
                                       implementation=implementation)
    (grad,) = torch.autograd.grad((out * upstream.to(device, dtype)).sum(), zz)
    return out.detach().cpu(), grad.cpu()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("D", [4, 9])
@pytest.mark.parametrize("kind", ["proxy", "source", "repeated", "scaled-proxy"])
def test_a_draw_in_the_span_of_the_frame_makes_that_sample_nan(implementation, device, dtype, D, kind):
    """docs/method.md §3.2: such a draw leaves no direction. The reference divided 0 by 0 (NaN) and the
    kernels returned a direction made of rounding (a finite answer); now every implementation makes that
    sample's points and gradient NaN, and leaves the other samples as they were, bit for bit."""
    k, n = 3, 3  # D = n + 1 = 4 (the draw completes the frame) and D = 9
    z, w, noise, upstream = draw(k, D, seed=41), draw(k, D, seed=42), draw(k, n - 1, D, seed=43), draw(k, n, D, seed=44)
    z, w, noise = (v.to(dtype).double() for v in (z, w, noise))  # exact in either dtype
    plain = expansion_and_gradient(implementation, device, dtype, z, w, noise, n, upstream)
    spanned = expansion_and_gradient(implementation, device, dtype, z, w, draw_in_the_span(kind, z, w, noise), n,
                                     upstream)
    for mine, theirs in zip(spanned, plain):
        assert torch.isnan(mine[1]).all()
        assert torch.equal(mine[[0, 2]], theirs[[0, 2]]) and torch.isfinite(theirs).all()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_draw_just_outside_the_span_keeps_its_direction(implementation, device, dtype):
    """The criterion is rounding's size, (m + 1)(1 + √m)u of the draw (§3.2): a draw whose part outside the
    span is a hundred times that is a direction like any other, the same in every implementation."""
    k, n, D = 2, 3, 4  # the last draw has a single coordinate outside the span
    z, w, noise, upstream = draw(k, D, seed=45), draw(k, D, seed=46), draw(k, n - 1, D, seed=47), draw(k, n, D, seed=48)
    tau = reference.span_rounding(n) * reference.unit_roundoff(dtype)
    # The direction outside the span of ŵ, u and the first draw, in float64.
    _, w_unit, _, _, r = geometry(z, w)
    basis = torch.linalg.qr(torch.stack([w_unit, r, noise[:, 0], draw(k, D, seed=49)], dim=2))[0]
    outside = basis[:, :, 3]
    noise[:, -1] = noise[:, 0] + 100 * tau * noise[:, 0].norm(dim=1, keepdim=True) * outside
    noise = noise.to(dtype).double()
    got = expansion_and_gradient(implementation, device, dtype, z, w, noise, n, upstream)
    truth = expansion_and_gradient("reference", "cpu", torch.float64, z.to(dtype).double(), w.to(dtype).double(),
                                   noise, n, upstream)
    assert all(torch.isfinite(v).all() for v in got)
    # The last frame vector keeps ~1/100 of the draw's rounding-free part: κ ≈ 1/(100τ) amplifies u.
    kappa = frame_condition_numbers(z.to(dtype).double(), w.to(dtype).double(), noise).max().item()
    assert_close_scaled(got[0], truth[0], BASE_RTOL[dtype] + 4 * kappa * UNIT_ROUNDOFF[dtype])


def ulp_off_the_axis(w):
    """w with one coordinate moved by one unit in the last place: off the axis by at most 2u|w|."""
    z = w.clone()
    z[:, 0] = torch.nextafter(w[:, 0], torch.full_like(w[:, 0], torch.inf))
    return z


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_source_on_its_proxy_axis_has_one_answer_in_every_implementation(implementation, device, dtype):
    """docs/method.md §3.6: a source on its proxy's axis to rounding (equal, opposite, a multiple, one ulp
    off) takes ρ_r = 0, its points are M = aŵ and its gradient that of M alone. Before, ρ_r was the
    rounding of r (and in float64 the ε of the normalisation, 1e-12), u = r/ρ_r was rounding or ŵ itself,
    and the gradient was decided by it (float32 CPU and CUDA differed by 0.07-0.22 on gradients of 0.3)."""
    k, n, D = 5, 4, 10
    w = draw(k, D, seed=51).to(dtype)
    z = torch.cat([w[:4] * torch.tensor([[1.0], [-1.0], [2.0], [-0.5]], dtype=dtype), ulp_off_the_axis(w[4:])])
    z, w = z.double(), w.double()  # exact in dtype
    noise, upstream = draw(k, n - 1, D, seed=52), draw(k, n, D, seed=53)
    out, grad = expansion_and_gradient(implementation, device, dtype, z, w, noise, n, upstream)
    # The definition, in float64 on the same inputs.
    zz = z.clone().requires_grad_()
    z_unit, w_unit = reference.l2_normalize(zz), reference.l2_normalize(w)
    M = ((z_unit * w_unit).sum(-1, keepdim=True) * w_unit).unsqueeze(1).expand(k, n, D)
    (expected_grad,) = torch.autograd.grad((M * upstream).sum(), zz)
    assert_close_scaled(out, M, BASE_RTOL[dtype])
    for row in range(k):
        # On the axis dM/dz nearly vanishes (a = ẑ·ŵ is stationary there): held to the gradient's scale |grad|/|z|.
        scale = (upstream[row].norm() / z[row].norm()).item()
        assert_close_scaled(grad[row], expected_grad[row], BASE_RTOL[dtype], min_scale=scale)
