"""Constants that several modules need, in a module that imports nothing of see_cuda."""
from __future__ import annotations

# The values of `implementation=` (see_cuda.dispatch decides what each runs).
IMPLEMENTATIONS = ("auto", "fused", "reference")

# The ε the original code adds to the squared norm before the square root (x / sqrt(|x|² + ε)).
NORM_EPS = 1e-12

# The similarity matrix's memory budget when none is given, in bytes (the op's default too:
# kDefaultChunkBytes in csrc/proxy_anchor.h).
DEFAULT_CHUNK_BYTES = 256 * 2**20

# The largest value of an op argument of schema type `int` (a C++ int64_t).
INT64_MAX = 2**63 - 1

# The values of `products=`: the float32 products a loss may use (csrc/loss_params.h, Products).
PRODUCTS = ("float32", "tf32", "bf16")
