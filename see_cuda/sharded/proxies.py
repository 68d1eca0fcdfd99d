"""The initial proxies of a shard: its rows of one C x D matrix, the same whatever the number of processes."""
from __future__ import annotations

import math

import torch

from . import collectives
from .partition import ClassShard

# The matrix is drawn in blocks of rows, each from a generator of its own, so
# that a process draws only the blocks its classes overlap.
ROWS_PER_BLOCK = 1024
_SEED_STRIDE = 2654435761  # Knuth's multiplicative hash: nearby seeds give far-apart block seeds
_SEED_MASK = 2**63 - 1


def initial_proxies(shard: ClassShard, dim: int, seed: int) -> torch.Tensor:
    """Rows [shard.offset, shard.stop) of a shard.total x dim float32 matrix of N(0, 2/C) entries.

    N(0, 2/C) is SEEProxyAnchorLoss's kaiming-normal (fan_out = C, gain √2).
    Block b (rows [b·ROWS_PER_BLOCK, (b+1)·ROWS_PER_BLOCK)) is drawn by
    torch.randn from a generator seeded with (seed·2654435761 + b) mod 2^63,
    so every partition of the classes holds the rows of the same matrix.
    """
    std = math.sqrt(2.0 / shard.total)
    out = torch.empty(shard.size, dim)
    for block in range(shard.offset // ROWS_PER_BLOCK, (shard.stop - 1) // ROWS_PER_BLOCK + 1):
        start = block * ROWS_PER_BLOCK
        generator = torch.Generator().manual_seed((seed * _SEED_STRIDE + block) & _SEED_MASK)
        rows = torch.randn(min(ROWS_PER_BLOCK, shard.total - start), dim, generator=generator)
        low, high = max(start, shard.offset), min(start + rows.shape[0], shard.stop)
        out[low - shard.offset:high - shard.offset] = rows[low - start:high - start]
    return out.mul_(std)


def common_seed(group=None) -> int:
    """A seed drawn from torch's default generator on the group's first process, the same on every process."""
    seed = torch.randint(0, 2**62, (), dtype=torch.int64)
    if collectives.rank_and_world(group)[1] > 1:
        seed = collectives.broadcast(seed.to(collectives.device_of(group)), group)
    return int(seed)
