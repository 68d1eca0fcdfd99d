"""Some of a Glyphs split's classes, relabelled 0..K-1: the pretraining characters, or a
grid cell's training characters drawn from a larger pool."""
from __future__ import annotations

import numpy as np
import torch

from ..data.glyphs import Glyphs


class GlyphClasses:
    """The images of `glyphs` whose class is in `kept` (labels of `glyphs`), relabelled by
    their position in `kept`; `batch` draws the same augmentation as `Glyphs.batch`."""

    def __init__(self, glyphs: Glyphs, kept):
        kept = [int(label) for label in kept]
        if len(set(kept)) != len(kept) or not all(0 <= label < glyphs.num_classes for label in kept):
            raise ValueError(f"kept must be distinct labels in [0, {glyphs.num_classes}), got {len(kept)} labels")
        self.glyphs = glyphs
        self.num_classes = len(kept)
        self.characters = "".join(glyphs.characters[label] for label in kept)
        relabel = torch.full((glyphs.num_classes,), -1, dtype=torch.int64)
        relabel[torch.tensor(kept, dtype=torch.int64)] = torch.arange(len(kept))
        self.relabel = relabel
        old = torch.as_tensor(glyphs.labels)
        self.indices = torch.nonzero(relabel[old] >= 0).flatten()
        self.labels = relabel[old[self.indices]].tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, positions, generator: torch.Generator | None = None):
        images, labels = self.glyphs.batch(self.indices[torch.as_tensor(positions, dtype=torch.int64)], generator)
        return images, self.relabel[labels]


def classes_from_pool(pool_size: int, count: int, seed: int) -> list[int]:
    """`count` of `pool_size` classes, drawn by `seed` (the same for every run), in label order."""
    if not 0 < count <= pool_size:
        raise ValueError(f"glyphs_train_classes ({count}) must be in [1, glyphs_class_pool = {pool_size}]")
    return sorted(np.random.default_rng(seed).permutation(pool_size)[:count].tolist())
