"""torch.func: first derivatives through the reference path equal torch.autograd's; the fused
ops refuse every transform with one error naming implementation="reference"; vmap is refused
on every path with a ValueError."""
import pytest
import torch
from torch.func import grad, vmap

import see_cuda

from conftest import requires_cpu_kernels

B, D, C, N_EXPANSION = 6, 12, 4, 4


def problem():
    g = torch.Generator().manual_seed(3)
    return (torch.randn(B, D, generator=g, dtype=torch.float64), torch.randint(0, C, (B,), generator=g),
            torch.randn(C, D, generator=g, dtype=torch.float64),
            torch.randn(B, N_EXPANSION - 1, D, generator=g, dtype=torch.float64))


def losses(implementation, check_values=True):
    """name -> f(x, proxies) of each public loss (and the expansion and slerp) on `implementation`."""
    _, y, _, noise = problem()
    return {
        "proxy_anchor_loss": lambda x, p: see_cuda.proxy_anchor_loss(
            x, y, p, implementation=implementation, check_values=check_values),
        "fused_see_loss": lambda x, p: see_cuda.fused_see_loss(
            x, y, p, n_expansion=N_EXPANSION, noise=noise, implementation=implementation, check_values=check_values),
        "fused_see_loss, synthetic not detached": lambda x, p: see_cuda.fused_see_loss(
            x, y, p, n_expansion=N_EXPANSION, noise=noise, detach_synthetic=False, implementation=implementation,
            check_values=check_values),
        "spherical_expansion": lambda x, p: see_cuda.spherical_expansion(
            x, p[y], N_EXPANSION, noise=noise, implementation=implementation, check_values=check_values).sum(),
        "slerp": lambda x, p: see_cuda.slerp(x, p[y], torch.full((B,), 0.3, dtype=torch.float64),
                                             implementation=implementation, check_values=check_values).sum(),
    }


@pytest.mark.parametrize("name", list(losses("reference")))
def test_first_derivatives_by_torch_func_on_the_reference_are_autograds(name):
    x, _, proxies, _ = problem()
    f = losses("reference")[name]
    by_func = grad(f, argnums=(0, 1))(x, proxies)
    leaves = x.clone().requires_grad_(), proxies.clone().requires_grad_()
    by_autograd = torch.autograd.grad(f(*leaves), leaves)
    for mine, theirs in zip(by_func, by_autograd):
        assert theirs.abs().sum() > 0
        torch.testing.assert_close(mine, theirs, rtol=1e-13, atol=1e-15)


@requires_cpu_kernels
@pytest.mark.parametrize("implementation", ["fused", "auto"])
@pytest.mark.parametrize("name", list(losses("fused")))
def test_fused_ops_refuse_torch_func_naming_the_reference(name, implementation):
    x, _, proxies, _ = problem()
    # dL/dx only: with w needing a gradient the expansion takes the reference's path on its own.
    with pytest.raises(RuntimeError, match=r'torch.func .*see_cuda::\w+ .*implementation="reference"'):
        grad(losses(implementation)[name])(x, proxies)


@pytest.mark.parametrize("implementation", ["reference", pytest.param("fused", marks=requires_cpu_kernels)])
@pytest.mark.parametrize("check_values", [True, False])
def test_vmap_is_refused_on_every_path(implementation, check_values):
    x, _, proxies, _ = problem()
    for f in losses(implementation, check_values).values():
        with pytest.raises(ValueError, match="torch.func.vmap"):
            vmap(f, in_dims=(0, None))(x.unsqueeze(0).expand(2, -1, -1), proxies)
