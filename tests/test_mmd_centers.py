"""MMD (regular simplex) centers: the recursion, the closed-form kernel, an independent oracle."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import see_cuda
from see_cuda import reference

from conftest import DEVICES
from oracles.original_see import mmd_coefficients


@settings(max_examples=30, deadline=None)
@given(L=st.integers(2, 40), extra=st.integers(0, 5), radius=st.sampled_from([1.0, 0.5, 3.0]))
def test_reference_centers_form_a_regular_simplex(L, extra, radius):
    centers = reference.mmd_centers(L, L - 1 + extra, radius)
    gram = centers @ centers.t()
    expected = torch.full((L, L), -radius**2 / (L - 1), dtype=torch.float64)
    expected.fill_diagonal_(radius**2)
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-12 * radius**2)
    assert torch.equal(centers, torch.tril(centers)), "row i must be zero beyond column i"
    assert centers[0, 0] == radius and centers[:, 0][1:].allclose(torch.tensor(-radius / (L - 1), dtype=torch.float64))


def test_reference_matches_the_published_recursion():
    for n in (1, 2, 5, 16, 33):
        torch.testing.assert_close(reference.mmd_centers(n + 1, n + 1), mmd_coefficients(n), rtol=0, atol=1e-14)


def test_single_center_is_the_first_axis():
    assert torch.equal(see_cuda.mmd_centers(1, 3), torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=30, deadline=None)
@given(L=st.integers(1, 70), extra=st.integers(0, 4), radius=st.sampled_from([1.0, 2.5]))
def test_closed_form_kernel_matches_the_recursion(device, L, extra, radius):
    dim = max(L - 1, 1) + extra
    fused = see_cuda.mmd_centers(L, dim, radius, device=device, implementation="fused")
    assert fused.dtype == torch.float64 and fused.device.type == device
    torch.testing.assert_close(fused.cpu(), reference.mmd_centers(L, dim, radius), rtol=0, atol=1e-13 * radius)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("num_centers, dim", [(1, 1), (2, 3), (17, 16), (17, 40), (65, 64)])
def test_kernel_matches_the_reference_and_the_cpu_kernel(device, num_centers, dim):
    got = see_cuda.mmd_centers(num_centers, dim, radius=1.5, device=device, implementation="fused")
    assert got.device.type == device and got.dtype == torch.float64 and got.shape == (num_centers, dim)
    expected = reference.mmd_centers(num_centers, dim, 1.5)
    cpu = see_cuda.mmd_centers(num_centers, dim, radius=1.5, implementation="fused")
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.cpu(), cpu, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(
    "args, error, name",
    [((5, 3), ValueError, "dim"), ((0, 3), ValueError, "num_centers"), ((2.5, 3), TypeError, "num_centers"),
     ((3, 2, -1.0), ValueError, "radius")],
)
def test_bad_arguments_are_named(args, error, name):
    with pytest.raises(error, match=name):
        see_cuda.mmd_centers(*args)
