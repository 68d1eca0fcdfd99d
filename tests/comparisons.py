"""Inputs and comparisons shared by the op-family tests (and the benchmark's checks)."""
import math

import torch

UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}


def draw(*shape, seed, dtype=torch.float64):
    """Standard normal draws from their own seed, on the CPU (copied to a device by the caller)."""
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
    exact = ref32.detach().float().cpu()
    eps = torch.finfo(fused.dtype).eps * exact.abs().max()
    bound = 2 * (torch_low.detach().float().cpu() - exact).abs() + eps
    assert ((fused.detach().float().cpu() - exact).abs() <= bound).all()


def leaf(t, device, dtype=None):
    """A fresh leaf copy of t on `device` that requires grad (t itself is left alone)."""
    return t.detach().to(device, dtype or t.dtype, copy=True).requires_grad_()


def gamma(k, u):
    """γ_k = ku / (1 - ku): a sum of k terms in any order is within γ_k·Σ|terms| of its value."""
    return k * u / (1 - k * u)


def chunking_bounds(alpha, lam, dtype, D, C, N, loss):
    """(loss bound, row-gradient bound per unit of 1/|row|, proxy-gradient bound per unit of 1/|proxy|)
    between two computations of one loss that chunk or shard its classes differently.

    Chunking changes which matrix products form the cosines (a product of one class may take another
    kernel, so another order of its D terms) and the order in which dL/dx̂ adds the chunks' G_c P̂_c.
    The unit rows and proxies are the same (each row is normalised alone). A cosine of unit vectors
    then moves by at most Δs = 2γ_D (two orders of a sum of D terms of total magnitude <= 1, Higham
    (3.5)). The loss, 2α-Lipschitz in the cosines per part, moves by 2(1 + λ)α·Δs, and by 4u of itself
    for its final rounding (and one per share when shares are added). An entry of G = dL/dS is
    w·α·σ(lse)·exp(a - lse): a and lse move by αΔs, log σ(lse) by at most as much, so G moves by the
    factor e^{3αΔs} - 1 relative, plus 8u of its own rounding. The sums of a column's exponentials are
    rounded in the kernel dtype in parts of at most 256 terms (the CPU's blocks; a GPU thread's rows,
    for the batches of up to ~2000 rows measured here), each part within γ_256 of its value, so two
    computations differ by 2γ_256 more, which moves each term's lse by as much (the loss by 2(1 + λ)
    times that) and G by twice that relative (its exp(-lse) and σ(lse)). A row's entries of G sum to
    at most 2α·w in magnitude (each term's softmax weights sum to 1, negatives weigh 1/C each), a proxy's
    to 2(1 + λ)α; dL/dx̂_i = Σ_c G_ic p̂_c adds 2γ_C of that for the order of its sum over classes,
    dL/dp̂_c = Σ_i G_ic x̂_i 2γ_N over rows, and the normalisation's backward (a projection, then
    1/|v|) 2γ_{D+4} of its own, and divides by |v|.
    """
    u = UNIT_ROUNDOFF[dtype]
    delta_s, delta_sum = 2 * gamma(D, u), 2 * gamma(256, u)
    relative = math.expm1(3 * alpha * delta_s) + 2 * delta_sum + 8 * u + 2 * gamma(D + 4, u)
    loss_bound = 2 * (1 + lam) * (alpha * delta_s + delta_sum) + 4 * u * abs(loss)
    rows_bound = (relative + 2 * gamma(C, u)) * 2 * alpha * max(1.0, lam)
    proxies_bound = (relative + 2 * gamma(N, u)) * 2 * (1 + lam) * alpha
    return loss_bound, rows_bound, proxies_bound
