"""Batched slerp (docs/method.md §6): geometry, the small-angle and antipodal limits, kernels vs reference."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import see_cuda
from see_cuda import reference

from comparisons import assert_close_scaled, assert_within_low_precision_error, draw, leaf
from conftest import DEVICES, IMPLEMENTATIONS

RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def random_pairs(rows, dim, seed, dtype=torch.float64):
    # Norm 10: x/sqrt(|x|^2 + 1e-12) is short of unit by 5e-13/|x|^2, which the
    # tests of unit length would otherwise see for short draws near the antipode.
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, rows, dim, generator=g, dtype=dtype)
    return (10 * a / a.norm(dim=-1, keepdim=True), 10 * b / b.norm(dim=-1, keepdim=True),
            torch.rand(rows, generator=g, dtype=dtype) * 1.4 - 0.2)


def angle(u, v):
    u, v = reference.l2_normalize(u), reference.l2_normalize(v)
    return 2 * torch.atan2((u - v).norm(dim=-1), (u + v).norm(dim=-1))


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 8), dim=st.integers(2, 16), seed=st.integers(0, 2**31 - 1))
def test_moves_along_the_great_circle_at_constant_speed(implementation, device, rows, dim, seed):
    a, b, t = random_pairs(rows, dim, seed)
    out = see_cuda.slerp(a.to(device), b.to(device), t.to(device), implementation=implementation).cpu()
    theta = angle(a, b)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(rows, dtype=torch.float64), rtol=0, atol=1e-12)

    def wrapped(x):  # t in [-0.2, 1.2] can pass π
        return torch.minimum(x.abs(), 2 * math.pi - x.abs())

    torch.testing.assert_close(angle(out, a), wrapped(t * theta), rtol=0, atol=1e-9)
    torch.testing.assert_close(angle(out, b), wrapped((1 - t) * theta), rtol=0, atol=1e-9)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_endpoints(implementation, device):
    a, b, _ = random_pairs(5, 7, 0)
    for t, expected in ((0.0, a), (1.0, b)):
        out = see_cuda.slerp(a.to(device), b.to(device), t, implementation=implementation).cpu()
        torch.testing.assert_close(out, reference.l2_normalize(expected), rtol=0, atol=1e-12)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("gap", [0.0, 1e-12, 1e-7, 1e-3])
def test_small_angles_are_stable_with_finite_gradients(implementation, device, gap):
    a = draw(4, 6, seed=1).to(device)
    b = (a + gap * draw(4, 6, seed=2).to(device)).requires_grad_()
    a = a.clone().requires_grad_()
    t = torch.full((4,), 0.3, dtype=torch.float64, device=device, requires_grad=True)
    out = see_cuda.slerp(a, b, t, implementation=implementation)
    straight = reference.l2_normalize(0.7 * reference.l2_normalize(a) + 0.3 * reference.l2_normalize(b))
    torch.testing.assert_close(out, straight, rtol=0, atol=1e-9)
    grads = torch.autograd.grad((out * torch.randn_like(out)).sum(), (a, b, t))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_antipodal_pairs_take_a_defined_half_circle(implementation, device):
    a = draw(3, 5, seed=3).to(device).requires_grad_()
    out = see_cuda.slerp(a, -a.detach(), 0.5, implementation=implementation)
    a_unit = reference.l2_normalize(a.detach())
    torch.testing.assert_close((out * a_unit).sum(-1), torch.zeros(3, dtype=torch.float64, device=device), rtol=0,
                               atol=1e-12)
    torch.testing.assert_close(out.detach(), reference.orthogonal_unit(a_unit), rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(out.sum(), a)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_gradcheck(implementation, device):
    a, b, t = random_pairs(4, 6, 1)
    inputs = tuple(leaf(v, device) for v in (a, b, t))
    assert torch.autograd.gradcheck(lambda p, q, r: see_cuda.slerp(p, q, r, implementation=implementation), inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["random", "close", "antipodal"])
def test_fused_matches_reference_values_and_gradients(device, case):
    a, b, t = random_pairs(16, 9, 2)
    if case == "close":
        b = a + 1e-6 * b
    elif case == "antipodal":
        b = -a
    upstream = torch.randn(16, 9, dtype=torch.float64)
    results = []
    for implementation, where in (("reference", "cpu"), ("fused", device)):
        inputs = [leaf(v, where) for v in (a, b, t)]
        out = see_cuda.slerp(*inputs, implementation=implementation)
        results.append([g.cpu() for g in (out, *torch.autograd.grad((out * upstream.to(where)).sum(), inputs))])
    for expected, fused in zip(*results):
        torch.testing.assert_close(fused, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_float32_matches_reference(device):
    a, b, t = random_pairs(64, 32, 3)
    expected = reference.slerp(a, b, t)
    fused = see_cuda.slerp(a.float().to(device), b.float().to(device), t.float().to(device), implementation="fused")
    torch.testing.assert_close(fused.cpu(), expected.float(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
def test_broadcasts_over_leading_axes(implementation, device):
    a, b = draw(2, 3, 4, seed=4).to(device), draw(2, 3, 4, seed=5).to(device)
    t = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=device)
    out = see_cuda.slerp(a, b, t, implementation=implementation)
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out[1, 2], see_cuda.slerp(a[1, 2], b[1, 2], 0.75, implementation=implementation))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="a and b"):
        see_cuda.slerp(torch.randn(3, 4), torch.randn(3, 5), 0.5)
    with pytest.raises(ValueError, match="t must broadcast"):
        see_cuda.slerp(torch.randn(3, 4), torch.randn(3, 4), torch.rand(2))
    with pytest.raises(TypeError, match="a must"):
        see_cuda.slerp([1.0, 0.0], torch.randn(2), 0.5)
    with pytest.raises(ValueError, match="D >= 2"):
        see_cuda.slerp(torch.ones(3, 1), -torch.ones(3, 1), 0.5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["slerp", "slerp_backward"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_raw_ops_refuse_rows_of_one_coordinate(device, op, dtype):
    """With D = 1 the sphere is two points and no great circle joins opposite ones: the fallback tangent
    at the antipode (§6, orthogonal to â) does not exist. The raw ops took D = 1 where the public slerp
    does not, and answered what rounding made of it: NaN in float32 (with a gradient of 0 for b, where
    the reference's was NaN), in float64 a "point" of norm 1.4 from a tangent e = â. They raise now."""
    a = torch.tensor([[1.0], [2.0], [0.0]], dtype=dtype, device=device)
    b, t = -a, torch.tensor([0.3, 0.5, 1.0], dtype=dtype, device=device)
    args = (a, b, t) if op == "slerp" else (torch.ones_like(a), a, b, t)
    with pytest.raises(RuntimeError, match="D >= 2"):
        getattr(torch.ops.see_cuda, op).default(*args)


# ---------------------------------------------------------------- each device's kernel vs the reference and the CPU
def slerp_problem(rows, D, seed, case):
    # Norm 10, as random_pairs: x/sqrt(|x|^2 + 1e-12) is then unit to 5e-15.
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
    inputs = [leaf(v, device, dtype) for v in (a, b, t)]
    out = see_cuda.slerp(*inputs, implementation=implementation)
    return (out, *torch.autograd.grad((out * upstream.to(device, dtype)).sum(), inputs))


# D = 3 rather than 2: random pairs in the plane come close to the antipode,
# where float32 angles lose digits as 1/(π - θ) (exact antipodes are a case of their own).
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["random", "close", "antipodal", "equal"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("D", [3, 9, 300])
def test_slerp_matches_reference_and_cpu(device, case, dtype, D):
    rows = 37
    a, b, t = (v.to(dtype) for v in slerp_problem(rows, D, seed=D, case=case))
    upstream = draw(rows, D, seed=5)
    got = slerp_with_grads(device, dtype, a, b, t, upstream)
    expected = slerp_with_grads(device, torch.float64, a, b, t, upstream, implementation="reference")
    cpu = slerp_with_grads("cpu", dtype, a, b, t, upstream)
    # At θ = 0 exactly the angle is not differentiable: compare the values only.
    compared = 1 if case == "equal" else 4
    for mine, truth, theirs in list(zip(got, expected, cpu))[:compared]:
        # Unit scale: for close pairs dL/dt = g.(b̂ - â) + O(θ²) cancels between terms of size |g|.
        assert_close_scaled(mine, truth, RTOL[dtype], min_scale=1.0)
        assert_close_scaled(mine, theirs, RTOL[dtype], min_scale=1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["random", "close", "near-antipode"])
@pytest.mark.parametrize("length", [0.0, 1e-7, 1e-5, 1e-3, 1.0])
def test_gradients_for_rows_of_any_length_are_the_references(device, case, length):
    """The kernels differentiate the formula their forward evaluates (chords, θ, the nearer chord's tangent)
    without taking |â| = |b̂| = 1, which â = a/sqrt(|a|² + 1e-12) is not: the unit-sphere formula they used
    before put the gradient of a zero row 0.4-0.7 of its size off the reference's, of a row of length 1e-5
    1e-2 off, and of a row of length 1 (random_pairs take 10 to hide it) 1e-12 off."""
    rows, D = 16, 5
    a, b, t = slerp_problem(rows, D, seed=int(1e3 * length) + 7, case="random")
    if case == "close":
        b = a + 1e-3 * b
    elif case == "near-antipode":
        b = -a + 0.3 * b
    a = a / 10 * length  # a of the given length, b of length 10
    upstream = draw(rows, D, seed=6)
    got = slerp_with_grads(device, torch.float64, a, b, t, upstream)
    expected = slerp_with_grads("cpu", torch.float64, a, b, t, upstream, implementation="reference")
    for mine, truth in zip(got, expected):
        assert_close_scaled(mine, truth, 1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_slerp_low_precision_within_the_error_of_torch_in_that_precision(device, dtype):
    a, b, t = (v.to(device, dtype) for v in slerp_problem(64, 32, seed=3, case="random"))
    fused = see_cuda.slerp(a, b, t, implementation="fused")
    torch_low = reference.slerp(a, b, t)
    ref32 = reference.slerp(a.float(), b.float(), t.float())
    assert_within_low_precision_error(fused, torch_low, ref32)
