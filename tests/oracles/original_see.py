"""The published SEE algorithm, structured as the published code is.

An independent oracle for `see_cuda.reference` and the baseline that the
throughput benchmark times: a Python loop over the expanded samples, one
Gram-Schmidt vector at a time, and a Proxy-Anchor loss that forms its exps
directly (docs/method.md §1, §3, §4). Only the selection and the noise come
from see_cuda, so that the same generator seed gives the same synthetic points.
"""
from __future__ import annotations

import torch

from see_cuda.reference import expansion_noise, positive_cosines
from see_cuda.selection import select_for_expansion


def l2_norm(x: torch.Tensor) -> torch.Tensor:
    """Rows divided by sqrt(|x|^2 + 1e-12), as the original."""
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-12)


def mmd_coefficients(n: int) -> torch.Tensor:
    """Bw, (n+1) x (n+1) float64: rows are unit vectors with pairwise inner product -1/n (docs/method.md §3.3)."""
    Bw = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    Bw[:, 0] = -1.0 / n
    Bw[0, 0] = 1.0
    for i in range(1, n + 1):
        for j in range(1, i):
            Bw[i, j] = (-1.0 / n - Bw[i, :] @ Bw[j, :]) / Bw[j, j]
        # The last diagonal entry is 0 in exact arithmetic; rounding would leave a tiny or NaN root.
        Bw[i, i] = torch.sqrt(1.0 - (Bw[i, :i] ** 2).sum()) if i < n else 0.0
    return Bw


def expand_one(z: torch.Tensor, w: torch.Tensor, noise: torch.Tensor, Bw: torch.Tensor) -> torch.Tensor:
    """n synthetic points of one unit sample z about its unit proxy w (§3.1-3.4); noise is (n-1) x D."""
    n = noise.shape[0] + 1
    a = z @ w
    M = a * w
    r = z - M
    rho = torch.sqrt(r @ r)
    if rho == 0:  # §3.6: the original returns NaN here; every z_k is M whatever u is
        return M.expand(n, -1).clone()
    frame = [w, r / rho]
    for g in noise:  # classical Gram-Schmidt: all coefficients from the untouched draw
        previous = torch.stack(frame)
        v = g - (previous @ g) @ previous
        frame.append(v / torch.sqrt(v @ v))
    f = torch.stack(frame[1:])  # f_0 = u, f_1..f_{n-1} = v_2..v_n
    return M + rho * (Bw[1:, :n].to(z.dtype) @ f)


def original_expansion(z: torch.Tensor, w: torch.Tensor, n_expansion: int, noise: torch.Tensor) -> torch.Tensor:
    """k x n x D synthetic points of k samples z about their proxies w (k x D), noise k x (n-1) x D."""
    Bw = mmd_coefficients(n_expansion).to(z.device)
    z, w = l2_norm(z), l2_norm(w)
    return torch.stack([expand_one(z[i], w[i], noise[i], Bw) for i in range(z.shape[0])])


def original_proxy_anchor(x: torch.Tensor, y: torch.Tensor, proxies: torch.Tensor, alpha: float, margin: float):
    """Proxy-Anchor loss as the original code writes it (§1), exps formed directly."""
    C = proxies.shape[0]
    cos = l2_norm(x) @ l2_norm(proxies).t()
    pos_one_hot = torch.nn.functional.one_hot(y, C)
    neg_one_hot = 1 - pos_one_hot
    pos_exp = torch.exp(-alpha * (cos - margin))
    neg_exp = torch.exp(alpha * (cos + margin))
    num_valid_proxies = (pos_one_hot.sum(0) != 0).sum()
    pos_sim_sum = torch.where(pos_one_hot == 1, pos_exp, torch.zeros_like(pos_exp)).sum(0)
    neg_sim_sum = torch.where(neg_one_hot == 1, neg_exp, torch.zeros_like(neg_exp)).sum(0)
    pos_term = torch.log(1 + pos_sim_sum).sum() / num_valid_proxies
    neg_term = torch.log(1 + neg_sim_sum).sum() / C
    return pos_term + neg_term


def original_see_loss(
    x, y, proxies, n_expansion=16, lam=0.2, ratio=0.4, alpha=32, margin=0.1, generator=None, noise=None,
    draw_noise=expansion_noise,
):
    """PA(x) + lam · PA(synthetic) (§4), expanding the round(B·ratio) best-fitted samples.

    `noise` (k x (n-1) x D, for the selected samples in selection order) fixes
    the frames; otherwise `draw_noise` draws it from `generator` (by default as
    the reference does; the benchmark passes the compiled stream's draws).
    """
    dtype = torch.promote_types(x.dtype, proxies.dtype)
    x, proxies = x.to(dtype), proxies.to(dtype)
    loss = original_proxy_anchor(x, y, proxies, alpha, margin)
    selected = select_for_expansion(positive_cosines(x, y, proxies), "fraction", ratio, 0.0)
    k, n, D = selected.numel(), n_expansion, x.shape[1]
    if k == 0:
        return loss
    if noise is None:
        noise = draw_noise(k, n, D, dtype, x.device, generator)
    with torch.no_grad():  # the synthetic term trains only the proxies
        synthetic = original_expansion(x[selected], proxies[y[selected]], n, noise.to(dtype))
    synthetic_labels = y[selected].repeat_interleave(n)
    return loss + lam * original_proxy_anchor(synthetic.reshape(k * n, D), synthetic_labels, proxies, alpha, margin)
