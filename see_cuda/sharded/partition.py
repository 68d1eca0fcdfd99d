"""Which classes each process holds: contiguous ranges, the remainder spread over the first ranks."""
from __future__ import annotations

from dataclasses import dataclass

from .. import validation


@dataclass(frozen=True)
class ClassShard:
    """The global classes [offset, offset + size) of `total` classes, held by one process."""

    offset: int
    size: int
    total: int

    @property
    def stop(self) -> int:
        return self.offset + self.size


def class_partition(num_classes: int, world_size: int) -> list[ClassShard]:
    """The shards of `num_classes` classes over `world_size` processes, in rank order.

    Rank r holds floor(C/W) classes, plus one if r < C mod W, starting where
    rank r - 1 stops: the sizes differ by at most one and every process holds
    at least one class (C >= W is required).
    """
    validation.check_positive_int(num_classes, "num_classes")
    validation.check_positive_int(world_size, "world_size")
    if num_classes < world_size:
        raise ValueError(f"num_classes ({num_classes}) must be at least the number of processes ({world_size}): "
                         "every process holds at least one class")
    base, extra = divmod(num_classes, world_size)
    return [ClassShard(rank * base + min(rank, extra), base + (rank < extra), num_classes)
            for rank in range(world_size)]


def class_shard(num_classes: int, rank: int, world_size: int) -> ClassShard:
    """The shard of `rank` in class_partition(num_classes, world_size)."""
    partition = class_partition(num_classes, world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    return partition[rank]
