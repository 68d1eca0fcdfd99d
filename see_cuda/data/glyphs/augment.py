"""Small random affine distortions of image tensors (shift, scale, rotation), in torch."""
from __future__ import annotations

import torch
import torch.nn.functional as F


class RandomAffine:
    """Rotates by up to ±`max_rotation` degrees, scales by a factor in `scale_range`,
    shifts by up to ±`max_shift` of the image side, about the image centre.

    Takes one C x H x W image or a batch N x C x H x W (one draw per image) of
    floats; uncovered pixels become 0, the background of rendered glyphs. Pass
    `generator` for reproducible draws.
    """

    def __init__(self, max_rotation: float = 8.0, scale_range=(0.9, 1.1), max_shift: float = 0.06):
        low, high = scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        if max_rotation < 0 or max_shift < 0:
            raise ValueError(f"max_rotation and max_shift must be >= 0, got {max_rotation} and {max_shift}")
        self.max_rotation, self.scale_range, self.max_shift = max_rotation, (low, high), max_shift

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch = images if images.dim() == 4 else images[None]
        warped = warp(batch, *self.sample(batch.shape[0], generator))
        return warped if images.dim() == 4 else warped[0]

    def sample(self, count: int, generator: torch.Generator | None = None):
        """`count` draws: (angles in radians, scales, shifts N x 2), the arguments of `warp`."""
        draws = torch.rand(count, 4, generator=generator, dtype=torch.float64)
        angles = torch.deg2rad(self.max_rotation * (2 * draws[:, 0] - 1))
        low, high = self.scale_range
        scales = low + (high - low) * draws[:, 1]
        # affine_grid coordinates span [-1, 1], so a shift of f sides is 2f there.
        shifts = 2 * self.max_shift * (2 * draws[:, 2:] - 1)
        return angles, scales, shifts

    def __repr__(self) -> str:
        return (f"RandomAffine(max_rotation={self.max_rotation}, scale_range={self.scale_range}, "
                f"max_shift={self.max_shift})")


def warp(images: torch.Tensor, angles: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """N x C x H x W images rotated by `angles` (radians), scaled by `scales`, then
    shifted by `shifts` (N x 2, x and y in [-1, 1] units); bilinear, zero padding.

    affine_grid wants the inverse map, output -> input: x_in = R^T (x_out - t) / s.
    """
    cos, sin = torch.cos(angles) / scales, torch.sin(angles) / scales
    tx, ty = shifts[:, 0], shifts[:, 1]
    inverse = torch.stack(
        [
            torch.stack([cos, sin, -(cos * tx + sin * ty)], 1),
            torch.stack([-sin, cos, sin * tx - cos * ty], 1),
        ],
        1,
    ).to(images.dtype)
    grid = F.affine_grid(inverse, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
