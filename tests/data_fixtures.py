"""Tiny copies of the benchmark folder layouts, with real PNG files, for tests.

Each image is a solid colour that encodes its class id (red channel) and its
position within the class (green channel), so tests can check which file a
sample came from.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image


def write_image(path, class_id: int, instance: int, size=(12, 9)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1] = class_id, instance
    Image.fromarray(pixels).save(path)


def make_cub(root, num_classes=200, per_class=2):
    """images.txt, image_class_labels.txt and images/<class folder>/<name>.png."""
    image_lines, label_lines = [], []
    image_id = 0
    for class_id in range(1, num_classes + 1):
        for instance in range(per_class):
            image_id += 1
            relative = f"{class_id:03d}.Bird_{class_id}/Bird_{class_id}_{instance}.png"
            write_image(os.path.join(root, "images", relative), class_id, instance)
            image_lines.append(f"{image_id} {relative}")
            label_lines.append(f"{image_id} {class_id}")
    _write_lines(os.path.join(root, "images.txt"), image_lines)
    _write_lines(os.path.join(root, "image_class_labels.txt"), label_lines)


def make_cars(root, num_classes=196, per_class=2):
    """cars_annos.mat (struct array `annotations`, as the original) and car_ims/."""
    from scipy.io import savemat

    fields = [("relative_im_path", "O"), ("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"),
              ("bbox_y2", "O"), ("class", "O"), ("test", "O")]  # fmt: skip
    entries = []
    for class_id in range(1, num_classes + 1):
        for instance in range(per_class):
            relative = f"car_ims/{len(entries) + 1:06d}.png"
            write_image(os.path.join(root, relative), class_id, instance)
            # The classification `test` flag alternates, to show it is ignored.
            entries.append((relative, 1, 1, 10, 8, class_id, instance % 2))
    annotations = np.array([entries], dtype=fields)  # 1 x N, like the original
    savemat(os.path.join(root, "cars_annos.mat"), {"annotations": annotations, "class_names": np.array(["a"])})


def make_sop(root, train_classes=(1, 2, 3), test_classes=(4, 5), per_class=3):
    """Ebay_train.txt / Ebay_test.txt and <super class>_final/<name>.png."""
    for file_name, classes in (("Ebay_train.txt", train_classes), ("Ebay_test.txt", test_classes)):
        lines = ["image_id class_id super_class_id path"]
        for class_id in classes:
            super_class_id = 1 + class_id % 2
            for instance in range(per_class):
                relative = f"super{super_class_id}_final/{class_id}_{instance}.png"
                write_image(os.path.join(root, relative), class_id, instance)
                lines.append(f"{len(lines)} {class_id} {super_class_id} {relative}")
        _write_lines(os.path.join(root, file_name), lines)


def make_inshop(root, rows):
    """list_eval_partition.txt from (item number, status) rows, and img/."""
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    for position, (item, status) in enumerate(rows):
        item_id = f"id_{item:08d}"
        relative = f"img/WOMEN/Dresses/{item_id}/{position:02d}_1_front.png"
        write_image(os.path.join(root, relative), item, position)
        # The original pads columns with runs of spaces.
        lines.append(f"{relative:<60}{item_id:<20}{status}")
    _write_lines(os.path.join(root, "list_eval_partition.txt"), lines)


def _write_lines(path, lines) -> None:
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")
