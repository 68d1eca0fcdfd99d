"""Hypothesis strategies shared by the op-family tests: shapes, label patterns, tensors."""
from __future__ import annotations

import torch
from hypothesis import strategies as st


@st.composite
def loss_problems(draw, max_batch=24, max_dim=24, max_classes=12, dtype=torch.float64):
    """(x, y, proxies, n_expansion, ratio): random shapes and label patterns.

    Label patterns: uniform, one class for all, many positives per class, and a
    class without any positive (the last proxy is never used).
    """
    n = draw(st.integers(1, 6))
    D = draw(st.integers(n + 1, max(n + 1, max_dim)))
    B = draw(st.integers(1, max_batch))
    C = draw(st.integers(1, max_classes))
    seed = draw(st.integers(0, 2**31 - 1))
    pattern = draw(st.sampled_from(["uniform", "single", "few", "unused_last"]))
    g = torch.Generator().manual_seed(seed)
    if pattern == "single" or C == 1:
        y = torch.full((B,), draw(st.integers(0, C - 1)), dtype=torch.int64)
    elif pattern == "few":
        y = torch.randint(0, min(C, 2), (B,), generator=g)
    elif pattern == "unused_last":
        y = torch.randint(0, C - 1, (B,), generator=g)
    else:
        y = torch.randint(0, C, (B,), generator=g)
    x = torch.randn(B, D, generator=g, dtype=dtype)
    proxies = torch.randn(C, D, generator=g, dtype=dtype)
    ratio = draw(st.sampled_from([0.0, 0.1, 0.4, 1.0]))
    return x, y, proxies, n, ratio


@st.composite
def expansion_problems(draw, max_k=6, max_dim=20, dtype=torch.float64, scales=(1e-3, 1.0, 50.0)):
    """(z, w, noise, n): k sources, their proxies and the Gaussian draws of their frames.

    Tiny scales are not unit after x/sqrt(|x|^2 + 1e-12): invariant tests leave them out.
    """
    n = draw(st.integers(1, 8))
    D = draw(st.integers(n + 1, max(n + 1, max_dim)))
    k = draw(st.integers(1, max_k))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    # Random directions at a chosen norm: a short vector is visibly short of
    # unit after x/sqrt(|x|^2 + 1e-12), which the invariant tests must not see.
    z = torch.randn(k, D, generator=g, dtype=dtype)
    z = z / z.norm(dim=-1, keepdim=True) * draw(st.sampled_from(scales))
    w = torch.randn(k, D, generator=g, dtype=dtype)
    w = w / w.norm(dim=-1, keepdim=True) * 3.0
    noise = torch.randn(k, n - 1, D, generator=g, dtype=dtype)
    return z, w, noise, n
