"""Counter-based Gaussian noise: the stream every implementation draws from.

A stream is named by a 64-bit `seed`. Its element i (i = 0, 1, 2, ...) is a
function of (seed, i) alone, so that a kernel can produce any element where it
needs it, in any order, and get the numbers of this reference:

1. Philox4x32-10 (Salmon et al., SC'11; the generator of cuRAND and of PyTorch's
   CUDA backend) with key (seed mod 2^32, seed div 2^32) maps the counter
   (g mod 2^32, g div 2^32, 0, 0) of group g = i div 4 to four 32-bit words;
   element i takes word i mod 4.
2. Box-Muller on the word pairs (0, 1) and (2, 3): a word w is the uniform
   u = ((w >> 8) + 1/2)·2^-24 for float32 draws and u = (w + 1/2)·2^-32 for
   float64 draws (both exact in float64, both in (0, 1)); a pair (u_a, u_b)
   gives r cos θ (first element) and r sin θ (second) with r = sqrt(-2 ln u_a),
   θ = 2π u_b.
3. The value is that formula evaluated in float64, rounded to the draw dtype.

This module is the specification (docs/method.md §5): plain, vectorised torch
code, on any device. The C++/CUDA kernels (csrc/philox_normal.h, reached as
`see_cuda.ops.philox_normal`) reproduce it: float32 draws within 1 ulp (almost
all bit-identical), float64 draws to a few ulp.
"""
from __future__ import annotations

import math

import torch

from . import _outside_graph

PHILOX_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
PHILOX_KEY_INCREMENTS = (0x9E3779B9, 0xBB67AE85)  # Weyl sequence: golden ratio, sqrt(3) - 1
PHILOX_ROUNDS = 10
MASK32 = 0xFFFFFFFF
# Seeds are uniform in [0, SEED_HIGH): 63 bits, so that they fit a signed int64.
SEED_HIGH = 2**63 - 1
TWO_PI = 2 * math.pi


def draw_seed(generator: torch.Generator | None, device) -> torch.Tensor:
    """A 0-d int64 seed in [0, 2^63 - 1) on `device`, from one draw of `generator`.

    `generator` (torch's default generator of the device when None) advances by
    that draw. The seed stays on the device: no host synchronisation, and the
    draw can be captured in a CUDA graph.
    """
    if generator is not None and torch.compiler.is_compiling():
        return _outside_graph.draw_seed(generator, device)
    return _draw_seed_eagerly(generator, device)


def _draw_seed_eagerly(generator, device) -> torch.Tensor:
    return torch.randint(0, SEED_HIGH, (), generator=generator, dtype=torch.int64, device=device)


# torch.compile cannot trace a draw from a torch.Generator object: the draw runs
# outside the graph, and fullgraph=True says so.
_outside_graph.register(
    "draw_seed", _draw_seed_eagerly,
    reason="see_cuda draws the noise seed from the torch.Generator passed as `generator`, which torch.compile "
           "cannot trace; under fullgraph=True pass noise= or leave generator=None (torch's default generator)",
)


def _mulhilo32(multiplier: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The high and low 32-bit words of multiplier·x, for x in [0, 2^32).

    The product can reach 2^64, past int64; x is multiplied in 16-bit halves,
    whose partial products stay below 2^48, so no step overflows.
    """
    low_product = multiplier * (x & 0xFFFF)
    high_product = multiplier * (x >> 16)
    low_sum = low_product + ((high_product & 0xFFFF) << 16)
    return (high_product >> 16) + (low_sum >> 32), low_sum & MASK32


def philox4x32_10(counter, key):
    """Philox4x32-10 of a counter (4 words) under a key (2 words).

    Words are int64 tensors (or Python ints) holding values in [0, 2^32); they
    broadcast against each other. Returns the 4 output words.
    """
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_index in range(PHILOX_ROUNDS):
        if round_index > 0:
            k0 = (k0 + PHILOX_KEY_INCREMENTS[0]) & MASK32
            k1 = (k1 + PHILOX_KEY_INCREMENTS[1]) & MASK32
        hi0, lo0 = _mulhilo32(PHILOX_MULTIPLIERS[0], c0)
        hi1, lo1 = _mulhilo32(PHILOX_MULTIPLIERS[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox_words(seed: torch.Tensor, num_groups: int) -> torch.Tensor:
    """num_groups x 4 int64 words of the stream `seed`: row g from the counter (g, 0, 0)."""
    group = torch.arange(num_groups, dtype=torch.int64, device=seed.device)
    zero = torch.zeros_like(group)
    key = (seed & MASK32, (seed >> 32) & MASK32)
    return torch.stack(philox4x32_10((group & MASK32, group >> 32, zero, zero), key), dim=-1)


def word_uniforms(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The uniforms in (0, 1) of the words, exactly, as float64 (24 bits for float32 draws, 32 for float64)."""
    if dtype == torch.float64:
        return (words.double() + 0.5) * 2.0**-32
    return ((words >> 8).double() + 0.5) * 2.0**-24


def box_muller(u_a: torch.Tensor, u_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r cos θ, r sin θ) with r = sqrt(-2 ln u_a), θ = 2π u_b."""
    r = torch.sqrt(-2.0 * torch.log(u_a))
    theta = TWO_PI * u_b
    return r * torch.cos(theta), r * torch.sin(theta)


def philox_normal(seed: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
    """Elements 0 .. numel-1 of the stream `seed`, in row-major order of `shape`.

    seed: 0-d int64 tensor; the result is on its device. dtype: float32 or float64.
    """
    numel = math.prod(shape)
    u = word_uniforms(philox_words(seed, (numel + 3) // 4), dtype)
    first_a, second_a = box_muller(u[:, 0], u[:, 1])
    first_b, second_b = box_muller(u[:, 2], u[:, 3])
    normals = torch.stack((first_a, second_a, first_b, second_b), dim=-1).reshape(-1)[:numel]
    return normals.to(dtype).reshape(shape)
