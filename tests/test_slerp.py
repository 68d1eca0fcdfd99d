"""Batched slerp: geometry, the small-angle and antipodal limits, fused vs reference."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import see_cuda
from see_cuda import reference
from conftest import requires_cpu_kernels

IMPLEMENTATIONS = ["reference", pytest.param("fused", marks=requires_cpu_kernels)]


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


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 8), dim=st.integers(2, 16), seed=st.integers(0, 2**31 - 1))
def test_moves_along_the_great_circle_at_constant_speed(implementation, rows, dim, seed):
    a, b, t = random_pairs(rows, dim, seed)
    out = see_cuda.slerp(a, b, t, implementation=implementation)
    theta = angle(a, b)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(rows, dtype=torch.float64), rtol=0, atol=1e-12)
    wrapped = lambda x: torch.minimum(x.abs(), 2 * math.pi - x.abs())  # t in [-0.2, 1.2] can pass π
    torch.testing.assert_close(angle(out, a), wrapped(t * theta), rtol=0, atol=1e-9)
    torch.testing.assert_close(angle(out, b), wrapped((1 - t) * theta), rtol=0, atol=1e-9)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_endpoints(implementation):
    a, b, _ = random_pairs(5, 7, 0)
    for t, expected in ((0.0, a), (1.0, b)):
        out = see_cuda.slerp(a, b, t, implementation=implementation)
        torch.testing.assert_close(out, reference.l2_normalize(expected), rtol=0, atol=1e-12)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("gap", [0.0, 1e-12, 1e-7, 1e-3])
def test_small_angles_are_stable_with_finite_gradients(implementation, gap):
    a = torch.randn(4, 6, dtype=torch.float64)
    b = (a + gap * torch.randn(4, 6, dtype=torch.float64)).requires_grad_()
    a = a.clone().requires_grad_()
    t = torch.full((4,), 0.3, dtype=torch.float64, requires_grad=True)
    out = see_cuda.slerp(a, b, t, implementation=implementation)
    straight = reference.l2_normalize(0.7 * reference.l2_normalize(a) + 0.3 * reference.l2_normalize(b))
    torch.testing.assert_close(out, straight, rtol=0, atol=1e-9)
    grads = torch.autograd.grad((out * torch.randn_like(out)).sum(), (a, b, t))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_antipodal_pairs_take_a_defined_half_circle(implementation):
    a = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    out = see_cuda.slerp(a, -a.detach(), 0.5, implementation=implementation)
    a_unit = reference.l2_normalize(a.detach())
    torch.testing.assert_close((out * a_unit).sum(-1), torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.detach(), reference.orthogonal_unit(a_unit), rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(out.sum(), a)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradcheck(implementation):
    a, b, t = random_pairs(4, 6, 1)
    inputs = tuple(v.clone().requires_grad_() for v in (a, b, t))
    assert torch.autograd.gradcheck(lambda p, q, r: see_cuda.slerp(p, q, r, implementation=implementation), inputs)


@requires_cpu_kernels
@pytest.mark.parametrize("case", ["random", "close", "antipodal"])
def test_fused_matches_reference_values_and_gradients(case):
    a, b, t = random_pairs(16, 9, 2)
    if case == "close":
        b = a + 1e-6 * b
    elif case == "antipodal":
        b = -a
    upstream = torch.randn(16, 9, dtype=torch.float64)
    results = []
    for implementation in ("reference", "fused"):
        inputs = [v.clone().requires_grad_() for v in (a, b, t)]
        out = see_cuda.slerp(*inputs, implementation=implementation)
        results.append((out, *torch.autograd.grad((out * upstream).sum(), inputs)))
    for expected, fused in zip(*results):
        torch.testing.assert_close(fused, expected, rtol=1e-9, atol=1e-10)


@requires_cpu_kernels
def test_fused_float32_matches_reference():
    a, b, t = random_pairs(64, 32, 3)
    expected = reference.slerp(a, b, t)
    fused = see_cuda.slerp(a.float(), b.float(), t.float(), implementation="fused")
    torch.testing.assert_close(fused, expected.float(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_broadcasts_over_leading_axes(implementation):
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    t = torch.tensor([0.25, 0.5, 0.75])
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
