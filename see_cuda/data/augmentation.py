"""The standard augmentation of deep-metric-learning image data sets (CUB, Cars, SOP, In-Shop):
a random resized crop and a horizontal flip for training, a resize and a centre crop for testing.

torchvision.transforms.v2 computes them where torchvision imports. Where it does not (its
wheel for one torch build beside another fails to import), the equivalents below compute the
same distribution of crops, from torchvision's documented algorithm: the crop's area is a
uniform fraction of the image's in `scale`, its aspect ratio log-uniform in `ratio`, its place
uniform; after 10 draws that do not fit, the largest centred crop within `ratio`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from PIL import Image

from .transforms import ResizeToTensor

SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
FLIP_PROBABILITY = 0.5
# Test images: the shorter side resized to size / CENTRE_FRACTION, then the centre size x size
# (256 then 224 for the usual 224).
CENTRE_FRACTION = 224 / 256
ATTEMPTS = 10


def _uniform(low: float, high: float, generator) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=generator))


def random_resized_crop_box(height: int, width: int, scale=SCALE, ratio=RATIO, generator=None):
    """(top, left, crop height, crop width) of one random resized crop of a height x width image."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(ATTEMPTS):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=generator))
            left = int(torch.randint(0, width - w + 1, (), generator=generator))
            return top, left, h, w
    image_ratio = width / height
    if image_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif image_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class RandomResizedCropFlip(ResizeToTensor):
    """Training: a random resized crop to size x size, flipped left-right with probability 1/2, as a tensor."""

    def __init__(self, size: int = 224, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 scale=SCALE, ratio=RATIO, generator: torch.Generator | None = None):
        super().__init__(size, mean, std)
        self.scale, self.ratio, self.generator = scale, ratio, generator

    def __call__(self, image: Image.Image) -> torch.Tensor:
        top, left, h, w = random_resized_crop_box(image.height, image.width, self.scale, self.ratio, self.generator)
        crop = image.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + w, top + h))
        if float(torch.rand((), generator=self.generator)) < FLIP_PROBABILITY:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return self.to_tensor(crop)

    def __repr__(self) -> str:
        return f"RandomResizedCropFlip(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class ResizeCentreCrop(ResizeToTensor):
    """Testing: the shorter side resized to size / CENTRE_FRACTION, then the centre size x size, as a tensor."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        short = round(self.size / CENTRE_FRACTION)
        if image.width <= image.height:
            resized = (short, max(short, round(image.height * short / image.width)))
        else:
            resized = (max(short, round(image.width * short / image.height)), short)
        image = image.resize(resized, Image.BILINEAR)
        top, left = round((image.height - self.size) / 2), round((image.width - self.size) / 2)
        return self.to_tensor(image.crop((left, top, left + self.size, top + self.size)))

    def __repr__(self) -> str:
        return f"ResizeCentreCrop(size={self.size})"


def torchvision_v2():
    """torchvision.transforms.v2, or None where torchvision is missing or does not import beside this torch."""
    try:
        from torchvision.transforms import v2
    except Exception:  # ImportError, or the RuntimeError of a torchvision built for another torch
        return None
    return v2


def source() -> str:
    """Which implementation dml_transforms gives here."""
    return "see_cuda.data.augmentation" if torchvision_v2() is None else "torchvision.transforms.v2"


def dml_transforms(size: int, mean: Sequence[float], std: Sequence[float]) -> tuple:
    """(training transform, test transform) for PIL images of an image data set (see source())."""
    v2 = torchvision_v2()
    if v2 is None:
        return RandomResizedCropFlip(size, mean, std), ResizeCentreCrop(size, mean, std)
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]
    train = v2.Compose([v2.ToImage(), v2.RandomResizedCrop(size, scale=SCALE, ratio=RATIO, antialias=True),
                        v2.RandomHorizontalFlip(FLIP_PROBABILITY)] + tail)
    test = v2.Compose([v2.ToImage(), v2.Resize(round(size / CENTRE_FRACTION), antialias=True),
                       v2.CenterCrop(size)] + tail)
    return train, test
