"""Cars-196 (Krause et al., 2013) in the deep-metric-learning split.

Layout under `root`: cars_annos.mat (struct array `annotations` with fields
relative_im_path, e.g. "car_ims/000001.jpg", and class, 1..196) and car_ims/.
Classes 1-98 are the train split, 99-196 the test split; the file's own `test`
flag (a classification split) is ignored, as in the metric-learning literature.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .files import reading
from .image_list import ImageListDataset, contiguous_labels, damaged_metadata, require_file
from .splits import check_split

NUM_TRAIN_CLASSES = 98


def read_annotations(path: str) -> list[tuple[str, int]]:
    """(relative image path, class id) for every entry of cars_annos.mat."""
    try:
        from scipy.io import loadmat
    except ImportError as error:
        raise ImportError("Cars196 reads cars_annos.mat with scipy: pip install scipy") from error
    with reading(path, "unpack Cars196 again into the folder given as root (--data-root)"):
        contents = loadmat(path, squeeze_me=True, struct_as_record=False)
    if "annotations" not in contents:
        raise damaged_metadata(path, "Cars196", "no 'annotations' in it")
    with reading(path, "unpack Cars196 again into the folder given as root (--data-root)"):
        return [(str(entry.relative_im_path), int(entry.__dict__["class"]))
                for entry in np.atleast_1d(contents["annotations"])]


class Cars196(ImageListDataset):
    def __init__(self, root: str, split: str = "train", transform: Callable | None = None):
        check_split(split, ("train", "test"), "Cars196")
        annotations = read_annotations(require_file(os.path.join(root, "cars_annos.mat"), "Cars196"))
        wanted = [
            (os.path.join(root, relative_path), class_id)
            for relative_path, class_id in annotations
            if (class_id <= NUM_TRAIN_CLASSES) == (split == "train")
        ]
        super().__init__([p for p, _ in wanted], contiguous_labels([c for _, c in wanted]), transform)
