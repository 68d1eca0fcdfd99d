"""What defines a Glyphs benchmark: faces, classes, image size and distortions,
and the deterministic split of characters into train and test classes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .augment import RandomAffine
from .coverage import common_ideographs
from .fonts import find_faces


@dataclass(frozen=True)
class GlyphsProtocol:
    """A Glyphs benchmark. Faces are named "Family-Weight-Region" (see `fonts`).

    train_faces / test_faces: the faces that draw the train / test characters.
    num_train_classes / num_test_classes: characters (classes) per split, disjoint.
    image_size: side of the square grey images.
    split_seed: seeds the choice of characters and the fixed test distortions.
    train_augmentation: redrawn each time a training image is read.
    test_distortion: drawn once per test image (seeded), the same in every run.
    """

    train_faces: tuple[str, ...]
    test_faces: tuple[str, ...]
    num_train_classes: int = 1000
    num_test_classes: int = 1000
    image_size: int = 64
    split_seed: int = 0
    train_augmentation: RandomAffine | None = field(default_factory=RandomAffine)
    test_distortion: RandomAffine | None = None

    def __post_init__(self):
        for name in ("train_faces", "test_faces"):
            faces = getattr(self, name)
            if isinstance(faces, str) or not faces or not all(isinstance(face, str) for face in faces):
                raise ValueError(f"{name} must be a non-empty sequence of face names like 'Sans-Regular-JP'")
            object.__setattr__(self, name, tuple(faces))
        for name in ("num_train_classes", "num_test_classes", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    def split_description(self) -> dict:
        """Everything the character split depends on (a cache key)."""
        return {
            "faces": sorted(set(self.train_faces + self.test_faces)),
            "num_train_classes": self.num_train_classes,
            "num_test_classes": self.num_test_classes,
            "split_seed": self.split_seed,
        }


def split_characters(protocol: GlyphsProtocol, use_font_tools: bool = True) -> dict[str, str]:
    """{"train": ..., "test": ...}: disjoint strings of characters, in code point order.

    Drawn at random (seeded by `split_seed`) from the CJK Unified Ideographs that
    every train and test face covers.
    """
    faces = find_faces(protocol.split_description()["faces"])
    candidates = common_ideographs(faces, use_font_tools)
    wanted = protocol.num_train_classes + protocol.num_test_classes
    if wanted > len(candidates):
        raise ValueError(
            f"num_train_classes + num_test_classes = {wanted}, but the faces share only {len(candidates)} ideographs"
        )
    order = np.random.default_rng(protocol.split_seed).permutation(len(candidates))
    train = sorted(order[: protocol.num_train_classes])
    test = sorted(order[protocol.num_train_classes : wanted])
    return {"train": "".join(candidates[i] for i in train), "test": "".join(candidates[i] for i in test)}
