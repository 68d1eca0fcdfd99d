"""Class-balanced batches: m images of each of batch_size / m classes.

Proxy-based and pair-based losses both need several images per class in a batch;
this is the sampler of the deep-metric-learning literature ("m per class").
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch


class ClassBalancedBatchSampler(torch.utils.data.Sampler):
    """Yields lists of dataset indices: `batch_size // m_per_class` classes, m each.

    Pass it as `DataLoader(dataset, batch_sampler=...)`. An epoch has
    `num_batches` batches (default: len(labels) // batch_size, at least 1). Classes
    are drawn from a shuffled cycle so that every class is used equally often, and
    within a class images from a shuffled cycle, so an image is reused only once
    every image of its class has been; a batch repeats an image only when its class
    has fewer than m images. The batches depend only on `seed` and the epoch: each iteration uses
    the current epoch and then advances it, and `set_epoch` sets it explicitly.
    """

    def __init__(
        self,
        labels: Sequence[int],
        m_per_class: int,
        batch_size: int,
        seed: int = 0,
        num_batches: int | None = None,
    ):
        labels = np.asarray(labels.tolist() if isinstance(labels, torch.Tensor) else labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError("labels must be a non-empty 1-D sequence of ints")
        _check_positive_int(m_per_class, "m_per_class")
        _check_positive_int(batch_size, "batch_size")
        if batch_size % m_per_class:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of m_per_class ({m_per_class})")
        self.classes, class_of_index = np.unique(labels, return_inverse=True)
        self.classes_per_batch = batch_size // m_per_class
        if self.classes_per_batch > len(self.classes):
            raise ValueError(
                f"batch_size // m_per_class = {self.classes_per_batch} classes per batch, "
                f"but labels hold only {len(self.classes)} classes"
            )
        if num_batches is not None:
            _check_positive_int(num_batches, "num_batches")
        self.indices_of_class = [np.flatnonzero(class_of_index == c) for c in range(len(self.classes))]
        self.m_per_class = m_per_class
        self.batch_size = batch_size
        self.num_batches = num_batches if num_batches is not None else max(1, labels.size // batch_size)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        class_cycle = _ShuffledCycle(np.arange(len(self.classes)), rng)
        image_cycles = [_ShuffledCycle(indices, rng) for indices in self.indices_of_class]
        for _ in range(self.num_batches):
            batch = []
            for class_index in class_cycle.take_distinct(self.classes_per_batch):
                batch.extend(image_cycles[class_index].take_distinct(self.m_per_class))
            yield batch


class _ShuffledCycle:
    """Endless stream of `items`, reshuffled every time it has gone through all of them."""

    def __init__(self, items: np.ndarray, rng: np.random.Generator):
        self.items, self.rng = items, rng
        self.order, self.position = rng.permutation(items), 0

    def take(self, count: int) -> list[int]:
        taken = []
        while len(taken) < count:
            if self.position == len(self.order):
                self.order, self.position = self.rng.permutation(self.items), 0
            taken.append(int(self.order[self.position]))
            self.position += 1
        return taken

    def take_distinct(self, count: int) -> list[int]:
        """`count` items, all different while there are enough; a repeat is deferred to the next draw."""
        taken: list[int] = []
        deferred: list[int] = []
        while len(taken) < min(count, len(self.items)):
            item = self.take(1)[0]
            (deferred if item in taken else taken).append(item)
        # Deferred items go first next time, so no class is skipped for long.
        self.order = np.concatenate([deferred, self.order[self.position :]]).astype(self.items.dtype)
        self.position = 0
        return taken + self.take(count - len(taken))


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
