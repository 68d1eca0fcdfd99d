"""Image-to-tensor conversion without torchvision (which does not import beside every torch build)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResizeToTensor:
    """PIL image -> float tensor C x size x size in [0, 1], optionally standardised.

    Resizes to a square (aspect ratio not kept) with bilinear filtering. With
    `mean` and `std` (one value per channel, e.g. IMAGENET_MEAN, IMAGENET_STD)
    each channel becomes (value - mean) / std.
    """

    def __init__(self, size: int = 224, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together")
        self.size = size
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.to_tensor(image.resize((self.size, self.size), Image.BILINEAR))

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """A PIL image (already at its size) as a C x H x W float tensor, standardised when asked."""
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(pixels.reshape(image.height, image.width, -1)).permute(2, 0, 1).contiguous()
        if self.mean is not None:
            tensor = (tensor - self.mean) / self.std
        return tensor

    def __repr__(self) -> str:
        return f"ResizeToTensor(size={self.size})"
