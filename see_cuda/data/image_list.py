"""A dataset of image files with class labels: what every benchmark loader builds."""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
from PIL import Image

from .files import damaged
from .transforms import ResizeToTensor


def contiguous_labels(class_ids: Sequence) -> list[int]:
    """Class ids (any sortable values) -> 0..C-1, in the sorted order of the ids."""
    position = {class_id: label for label, class_id in enumerate(sorted(set(class_ids)))}
    return [position[class_id] for class_id in class_ids]


def damaged_metadata(path: str, dataset: str, problem):
    """The DamagedFileError for a data set's list or annotation file."""
    return damaged(path, problem, f"unpack {dataset} again into the folder given as root (--data-root)")


def read_rows(path: str, dataset: str, min_fields: int, skip: int = 0, int_fields: tuple[int, ...] = (),
              max_split: int = -1) -> list[list[str]]:
    """The whitespace-separated fields of every non-empty line after the first `skip`, each line
    with at least `min_fields` fields (and integers where `int_fields` says); a line that is not
    is a DamagedFileError naming the file and the line."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise damaged_metadata(path, dataset, error) from error
    rows = []
    for number, line in enumerate(lines[skip:], skip + 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=max_split)
        if len(fields) < min_fields or not all(_is_int(fields[i]) for i in int_fields):
            raise damaged_metadata(path, dataset, f"line {number} is {line.strip()[:80]!r}")
        rows.append(fields)
    return rows


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


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
