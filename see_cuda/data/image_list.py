"""A dataset of image files with class labels: what every benchmark loader builds."""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
from PIL import Image

from .transforms import ResizeToTensor


def contiguous_labels(class_ids: Sequence) -> list[int]:
    """Class ids (any sortable values) -> 0..C-1, in the sorted order of the ids."""
    position = {class_id: label for label, class_id in enumerate(sorted(set(class_ids)))}
    return [position[class_id] for class_id in class_ids]


def require_file(path: str, dataset: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{dataset}: expected {path}; is root the folder the dataset was unpacked to?")
    return path


class ImageListDataset(torch.utils.data.Dataset):
    """(transform(image), label) for parallel lists of image paths and labels.

    Images are opened with PIL and converted to RGB. `transform` takes the PIL
    image; it defaults to `ResizeToTensor(224)`. `labels` is a list of ints,
    zero-based and contiguous, for samplers and evaluation.
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[int], transform: Callable | None = None):
        if len(paths) != len(labels):
            raise ValueError(f"paths and labels must have one entry per image, got {len(paths)} and {len(labels)}")
        self.paths = list(paths)
        self.labels = [int(label) for label in labels]
        self.transform = ResizeToTensor() if transform is None else transform

    @property
    def num_classes(self) -> int:
        return len(set(self.labels))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as image:
            rgb = image.convert("RGB")
        return self.transform(rgb), self.labels[index]
