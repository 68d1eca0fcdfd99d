"""products=: the float32 products the one-call CUDA op may use, and the bound each gives the loss.

The bound (README, "Products"): every cosine within δ of its exact value moves the
Proxy-Anchor loss by at most 2α(1 + λ)δ, δ = 3·2⁻²² + γ₃D for "float32" (split tf32),
(1 + 2⁻¹¹)²(1 + γ_D) − 1 for "tf32" and (1 + 2⁻⁸)²(1 + γ_D) − 1 for "bf16". Here the
derivation is checked on the reference (the loss as a function of its cosines, moved
by δ against the gradient's signs, the worst direction to first order, and at
random); the kernels' products are checked against the CPU kernels in
csrc/tests/test_cuda_see_loss.cpp and test_cuda_tile_product.cpp, and each single
product against float32's on a GPU below.
"""
import math

import pytest
import torch

import see_cuda
from see_cuda import reference

from conftest import requires_cpu_kernels, requires_cuda_kernels

U32 = 2.0**-24


def gamma(k: int, u: float = U32) -> float:
    return k * u / (1 - k * u)


def cosine_error(products: str, D: int) -> float:
    """δ: how far a cosine of unit float32 vectors is from its exact value, per products."""
    ut = 2.0**-11
    if products in ("tf32", "bf16"):  # each operand rounded to 11 or 8 significant bits, summed in float
        u = ut if products == "tf32" else 2.0**-8
        return (1 + u) ** 2 * (1 + gamma(D)) - 1
    return 3 * 2.0**-22 + gamma(3 * D)


def loss_bound(products: str, D: int, alpha: float, lam: float) -> float:
    return 2 * alpha * (1 + lam) * cosine_error(products, D)


@pytest.mark.parametrize("products", ["float32", "tf32", "bf16"])
@pytest.mark.parametrize("alpha", [1.0, 32.0])
@pytest.mark.parametrize("seed", range(4))
def test_cosines_moved_by_delta_move_the_loss_by_at_most_2_alpha_delta(products, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    B, C, D = 40, 25, 128
    s = torch.rand(B, C, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, C, (B,), generator=g)
    positive = y.unsqueeze(-1) == torch.arange(C)
    count = reference.num_distinct(y)
    delta = cosine_error(products, D)

    def loss(cosines):
        return reference.proxy_anchor_of_cosines(cosines, positive, count, C, alpha, 0.1)

    s.requires_grad_(True)
    base = loss(s)
    (grad,) = torch.autograd.grad(base, s)
    with torch.no_grad():
        worst = loss(s + delta * grad.sign()) - base  # uphill in every cosine
        noise = loss(s + delta * (2 * torch.rand(B, C, generator=g, dtype=torch.float64) - 1)) - base
    bound = 2 * alpha * delta
    assert 0 < worst.item() <= bound and abs(noise.item()) <= bound
    # the bound is reached to first order: it is not loose by orders of magnitude where the terms saturate
    assert worst.item() >= 1e-3 * bound


@pytest.mark.parametrize("products", [1, None, "fp16", "TF32", "float64"])
def test_products_must_be_float32_tf32_or_bf16(products):
    x, y, proxies = torch.randn(6, 8), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(3, 8)
    error = TypeError if not isinstance(products, str) else ValueError
    with pytest.raises(error, match="products must be"):
        see_cuda.fused_see_loss(x, y, proxies, n_expansion=3, products=products)
    with pytest.raises(error, match="products must be"):
        see_cuda.SEEProxyAnchorLoss(3, 8, n_expansion=3, products=products)


@requires_cpu_kernels
def test_on_the_cpu_tf32_and_bf16_products_are_float32_products():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 24, generator=g, requires_grad=True)
    proxies = torch.randn(9, 24, generator=g, requires_grad=True)
    y = torch.randint(0, 9, (30,), generator=g)
    results = []
    for products in ("float32", "tf32", "bf16"):
        loss = see_cuda.fused_see_loss(x, y, proxies, n_expansion=4, generator=torch.Generator().manual_seed(1),
                                       implementation="fused", products=products)
        results.append((loss.detach(), *torch.autograd.grad(loss, (x, proxies))))
    assert all(torch.equal(a, b) for a, b in zip(results[0], results[1]))
    assert all(torch.equal(a, b) for a, b in zip(results[0], results[2]))


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
@pytest.mark.parametrize("products", ["tf32", "bf16"])
def test_on_a_gpu_single_products_move_the_loss_within_the_two_bounds(device, products):
    """The same call with either products: the same rows (the selection and the expansion do not use
    the tile products), cosines each within its δ of the exact ones, so the losses within the sum of
    the two bounds, plus the rounding of the rest of the loss (float32 sums of N·C terms: 1e-5 |L|)."""
    g = torch.Generator().manual_seed(5)
    B, C, D, alpha, lam = 180, 2000, 128, 32.0, 0.2
    x = torch.randn(B, D, generator=g).to(device)
    proxies = torch.randn(C, D, generator=g).to(device)
    y = torch.randint(0, C, (B,), generator=g).to(device)
    noise = torch.randn(B, 15, D, generator=g).to(device)
    losses = {chosen: see_cuda.fused_see_loss(x, y, proxies, noise=noise, products=chosen).item()
              for chosen in ("float32", products)}
    bound = loss_bound("float32", D, alpha, lam) + loss_bound(products, D, alpha, lam) + 1e-5 * abs(losses["float32"])
    assert abs(losses[products] - losses["float32"]) <= bound, (losses, bound)
    assert all(math.isfinite(v) for v in losses.values())
