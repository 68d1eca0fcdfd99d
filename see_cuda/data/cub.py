"""CUB-200-2011 (Wah et al., 2011) in the deep-metric-learning split.

Layout under `root`: images.txt ("image_id relative/path.jpg"),
image_class_labels.txt ("image_id class_id", classes 1..200) and images/.
Classes 1-100 are the train split, 101-200 the test split.
"""
from __future__ import annotations

import os
from typing import Callable

from .image_list import ImageListDataset, contiguous_labels, damaged_metadata, read_rows, require_file
from .splits import check_split

NUM_TRAIN_CLASSES = 100


def _read_pairs(path: str, int_value: bool = False) -> dict[str, str]:
    return {key: value for key, value in read_rows(path, "CUB200", 2, int_fields=(1,) if int_value else (),
                                                    max_split=1)}


class CUB200(ImageListDataset):
    def __init__(self, root: str, split: str = "train", transform: Callable | None = None):
        check_split(split, ("train", "test"), "CUB200")
        paths = _read_pairs(require_file(os.path.join(root, "images.txt"), "CUB200"))
        classes_path = require_file(os.path.join(root, "image_class_labels.txt"), "CUB200")
        classes = _read_pairs(classes_path, int_value=True)
        missing = [image_id for image_id in paths if image_id not in classes]
        if missing:
            raise damaged_metadata(classes_path, "CUB200", f"no class for {len(missing)} image id(s) of images.txt, "
                                                           f"the first {missing[0]}")
        wanted = []
        for image_id, relative_path in paths.items():
            class_id = int(classes[image_id])
            if (class_id <= NUM_TRAIN_CLASSES) == (split == "train"):
                wanted.append((os.path.join(root, "images", relative_path.strip()), class_id))
        super().__init__([p for p, _ in wanted], contiguous_labels([c for _, c in wanted]), transform)
