"""A user's own images in class folders, the layout of torchvision's ImageFolder:

    root/train/<class name>/<image files>
    root/test/<class name>/<image files>

The test classes should be other classes than the training ones, as in CUB or SOP (the
retrieval question is whether the embedding generalises to unseen classes); nothing
checks that, since a folder name alone cannot say whether two classes are the same.
Labels are zero-based and contiguous per split, in the sorted order of the folder names.
"""
from __future__ import annotations

import os
from typing import Callable

from .image_list import ImageListDataset, require_file
from .splits import check_split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
NAME = "class folders"


class ClassFolders(ImageListDataset):
    def __init__(self, root: str, split: str = "train", transform: Callable | None = None):
        check_split(split, ("train", "test"), NAME)
        folder = require_file(os.path.join(root, split), NAME)
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        paths, labels, empty = [], [], []
        for label, name in enumerate(classes):
            images = sorted(entry.path for entry in os.scandir(os.path.join(folder, name))
                            if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS))
            if not images:
                empty.append(name)
            paths += images
            labels += [label] * len(images)
        if not classes:
            raise FileNotFoundError(f"{NAME}: {folder} holds no class folders; expected {folder}/<class>/<images>")
        if empty:
            raise FileNotFoundError(f"{NAME}: {len(empty)} class folder(s) of {folder} hold no images "
                                    f"({', '.join(IMAGE_EXTENSIONS)}), the first {empty[0]!r}")
        super().__init__(paths, labels, transform)
