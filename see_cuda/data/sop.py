"""Stanford Online Products (Oh Song et al., 2016).

Layout under `root`: Ebay_train.txt and Ebay_test.txt, each with the header
"image_id class_id super_class_id path" and paths relative to root
(e.g. "bicycle_final/111085122871_0.JPG"). 11,318 train and 11,316 test classes.
"""
from __future__ import annotations

import os
from typing import Callable

from .image_list import ImageListDataset, contiguous_labels, read_rows, require_file
from .splits import check_split

LIST_FILES = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}


class StanfordOnlineProducts(ImageListDataset):
    def __init__(self, root: str, split: str = "train", transform: Callable | None = None):
        check_split(split, tuple(LIST_FILES), "StanfordOnlineProducts")
        list_path = require_file(os.path.join(root, LIST_FILES[split]), "StanfordOnlineProducts")
        rows = read_rows(list_path, "StanfordOnlineProducts", 4, skip=1, int_fields=(1, 2))
        super().__init__(
            [os.path.join(root, row[3]) for row in rows],
            contiguous_labels([int(row[1]) for row in rows]),
            transform,
        )
        self.super_labels = contiguous_labels([int(row[2]) for row in rows])
