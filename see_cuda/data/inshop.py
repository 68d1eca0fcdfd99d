"""In-Shop Clothes Retrieval (DeepFashion, Liu et al., 2016).

Layout under `root`: list_eval_partition.txt (a count line, a header line
"image_name item_id evaluation_status", then rows such as
"img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train") and img/.
Splits: "train" (3,997 items), and "query" / "gallery" (3,985 items), which are
searched against each other. Query and gallery share one labelling of their
items, so equal labels mean the same item across the two.
"""
from __future__ import annotations

import os
from typing import Callable

from .image_list import ImageListDataset, contiguous_labels, read_rows, require_file
from .splits import check_split

SPLITS = ("train", "query", "gallery")


def read_partition(path: str) -> list[tuple[str, str, str]]:
    """(image name, item id, status) for every image; the two header lines skipped."""
    return [(row[0], row[1], row[2]) for row in read_rows(path, "InShop", 3, skip=2)]


class InShop(ImageListDataset):
    def __init__(self, root: str, split: str = "train", transform: Callable | None = None):
        check_split(split, SPLITS, "InShop")
        rows = read_partition(require_file(os.path.join(root, "list_eval_partition.txt"), "InShop"))
        # Labels are assigned over train, or over query and gallery together.
        group = {"train"} if split == "train" else {"query", "gallery"}
        in_group = [row for row in rows if row[2] in group]
        labels = contiguous_labels([item for _, item, _ in in_group])
        wanted = [(name, label) for (name, _, status), label in zip(in_group, labels) if status == split]
        super().__init__([os.path.join(root, name) for name, _ in wanted], [label for _, label in wanted], transform)
