"""The Glyphs dataset: one class per CJK ideograph, one image per face."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..files import damaged
from ..splits import check_split
from .augment import warp
from .cache import REMEDY, cached_array, cached_json, content_key, default_cache_dir
from .fonts import find_faces
from .protocol import GlyphsProtocol, split_characters
from .render import render_table


class Glyphs(torch.utils.data.Dataset):
    """(1 x S x S float image in [0, 1], label) for every character in every face of a split.

    Sample `index` is character `index % num_classes` drawn in face
    `index // num_classes`; its label is the character's position in
    `characters`. Renderings are cached under `cache_dir` (default
    ~/.cache/see_cuda/glyphs) and read memory-mapped. The training split applies
    the protocol's `train_augmentation` unless `augment=False`; the test split
    applies its fixed `test_distortion`, if any.
    """

    def __init__(
        self,
        split: str = "train",
        protocol: GlyphsProtocol | None = None,
        cache_dir: str | None = None,
        augment: bool = True,
    ):
        from .defaults import DEFAULT_PROTOCOL

        self.split = check_split(split, ("train", "test"), "Glyphs")
        self.protocol = DEFAULT_PROTOCOL if protocol is None else protocol
        cache_dir = default_cache_dir() if cache_dir is None else cache_dir
        self.face_names = self.protocol.train_faces if split == "train" else self.protocol.test_faces
        self.characters = load_characters(self.protocol, cache_dir)[split]
        self.images = load_renderings(self.face_names, self.characters, self.protocol.image_size, cache_dir)
        self.num_classes = len(self.characters)
        self.labels = list(range(self.num_classes)) * len(self.face_names)
        self.augmentation = self.protocol.train_augmentation if split == "train" and augment else None
        self._fixed_distortion = None
        if split == "test" and self.protocol.test_distortion is not None:
            generator = torch.Generator().manual_seed(self.protocol.split_seed)
            self._fixed_distortion = self.protocol.test_distortion.sample(len(self), generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        images, labels = self.batch([index])
        return images[0], int(labels[0])

    def batch(self, indices, generator: torch.Generator | None = None):
        """(images N x 1 x S x S, labels N) for many samples at once, faster than one by one."""
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if len(indices) and (int(indices.min()) < -len(self) or int(indices.max()) >= len(self)):
            raise IndexError(f"Glyphs index out of range for {len(self)} samples")
        indices = indices % len(self)
        faces, characters = (indices // self.num_classes).numpy(), (indices % self.num_classes).numpy()
        images = torch.from_numpy(np.ascontiguousarray(self.images[faces, characters]))
        images = images.to(torch.float32).div_(255).unsqueeze(1)
        if self.augmentation is not None:
            images = self.augmentation(images, generator)
        if self._fixed_distortion is not None:
            images = warp(images, *(draw[indices] for draw in self._fixed_distortion))
        return images, torch.from_numpy(characters.astype(np.int64))

    def all(self):
        """The whole split as (images, labels), e.g. to embed for evaluation."""
        return self.batch(torch.arange(len(self)))


def load_characters(protocol: GlyphsProtocol, cache_dir: str) -> dict[str, str]:
    description = protocol.split_description()
    path = os.path.join(cache_dir, f"characters-{content_key(description)}.json")
    split = cached_json(path, lambda: split_characters(protocol))
    sizes = {"train": protocol.num_train_classes, "test": protocol.num_test_classes}
    if not isinstance(split, dict) or any(not isinstance(split.get(name), str) or len(split[name]) != size
                                          for name, size in sizes.items()):
        raise damaged(path, f"not {sizes['train']} training and {sizes['test']} test characters", REMEDY)
    return split


def load_renderings(face_names, characters: str, size: int, cache_dir: str) -> np.ndarray:
    """faces x characters x size x size uint8, from the cache or rendered now."""
    description = {"faces": list(face_names), "characters": characters, "size": size}
    path = os.path.join(cache_dir, f"renderings-{content_key(description)}.npy")
    shape = (len(face_names), len(characters), size, size)
    return cached_array(path, lambda: render_table(find_faces(face_names), characters, size), shape, np.uint8)
