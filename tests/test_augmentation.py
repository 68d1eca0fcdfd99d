"""The image data sets' augmentation without torchvision (see_cuda.data.augmentation), checked
against the distribution torchvision documents for RandomResizedCrop: the crop's area a uniform
fraction of the image's in `scale`, its aspect ratio log-uniform in `ratio`, its place uniform, and
the largest centred crop within `ratio` when 10 draws do not fit; flips with probability 1/2."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from see_cuda.data import augmentation
from see_cuda.data.augmentation import RandomResizedCropFlip, ResizeCentreCrop, random_resized_crop_box

scipy_stats = pytest.importorskip("scipy.stats")
DRAWS = 2000
# A KS test at this level fails a right implementation once in 10^4 runs.
P_FLOOR = 1e-4


def boxes(height, width, scale, ratio, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [random_resized_crop_box(height, width, scale, ratio, generator) for _ in range(DRAWS)]


def test_area_and_log_aspect_are_uniform_where_every_draw_fits():
    # On a 1000 x 1000 image with areas up to half of it, every draw fits: no rejection shapes the law.
    scale, ratio = (0.08, 0.5), (3 / 4, 4 / 3)
    drawn = boxes(1000, 1000, scale, ratio)
    areas = np.array([h * w / 1e6 for _, _, h, w in drawn])
    log_aspects = np.array([math.log(w / h) for _, _, h, w in drawn])
    # Rounding the sides to integers moves an area by < 2e-3 and a log aspect by < 5e-3: far below the KS statistic's
    # resolution at 2,000 draws (~0.03).
    assert scipy_stats.kstest(areas, "uniform", args=(scale[0], scale[1] - scale[0])).pvalue > P_FLOOR
    low, high = math.log(ratio[0]), math.log(ratio[1])
    assert scipy_stats.kstest(log_aspects, "uniform", args=(low, high - low)).pvalue > P_FLOOR


def test_the_place_is_uniform_over_the_positions_that_fit():
    drawn = boxes(300, 200, (0.08, 0.3), (3 / 4, 4 / 3), seed=1)
    # top / (H - h) is uniform on [0, 1] (a discrete uniform over H - h + 1 places).
    fractions = np.array([top / (300 - h) for top, _, h, _ in drawn if h < 300])
    assert scipy_stats.kstest(fractions, "uniform").pvalue > P_FLOOR
    assert all(0 <= top and top + h <= 300 and 0 <= left and left + w <= 200 for top, left, h, w in drawn)


def test_a_shape_no_draw_fits_takes_the_largest_centred_crop_within_the_ratio():
    # A 10 x 1000 strip: no crop of aspect at most 4/3 and area at least 8% fits; the fallback clamps the aspect.
    top, left, h, w = random_resized_crop_box(10, 1000, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0))
    assert (h, w) == (10, round(10 * 4 / 3))
    assert (top, left) == (0, (1000 - w) // 2)


def test_the_training_transform_flips_half_the_time_and_gives_the_size():
    # Left dark, right bright.
    image = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (48, 1, 3)))
    transform = RandomResizedCropFlip(16, scale=(1.0, 1.0), ratio=(64 / 48, 64 / 48),
                                      generator=torch.Generator().manual_seed(3))
    outputs = [transform(image) for _ in range(400)]
    assert all(t.shape == (3, 16, 16) for t in outputs)
    flipped = sum(bool(t[0, 0, 0] > t[0, 0, -1]) for t in outputs)
    assert scipy_stats.binomtest(flipped, 400, 0.5).pvalue > P_FLOOR


def test_the_test_transform_resizes_the_shorter_side_then_takes_the_centre():
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, 100:] = 255  # the right half bright: the centre crop straddles the middle
    out = ResizeCentreCrop(56)(Image.fromarray(pixels))
    assert out.shape == (3, 56, 56)
    # Shorter side 100 -> 64 (56 / 0.875), so 128 x 64, and the centre 56 columns are 28 dark and 28 bright.
    assert torch.all(out[:, :, :27] < 0.01) and torch.all(out[:, :, 29:] > 0.99)


def test_without_torchvision_the_data_sets_use_these_transforms(monkeypatch):
    monkeypatch.setattr(augmentation, "torchvision_v2", lambda: None)
    train, test = augmentation.dml_transforms(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert isinstance(train, RandomResizedCropFlip) and isinstance(test, ResizeCentreCrop)
    assert augmentation.source() == "see_cuda.data.augmentation"


def test_the_crops_match_torchvision_where_it_imports():
    v2 = augmentation.torchvision_v2()
    if v2 is None:
        pytest.skip("torchvision does not import here")
    ours = boxes(400, 300, (0.08, 1.0), (3 / 4, 4 / 3), seed=5)
    torch.manual_seed(5)
    theirs = [v2.RandomResizedCrop.get_params(torch.zeros(3, 400, 300), [0.08, 1.0], [3 / 4, 4 / 3])
              for _ in range(DRAWS)]
    area = lambda drawn: [h * w for _, _, h, w in drawn]  # noqa: E731
    assert scipy_stats.ks_2samp(area(ours), area(theirs)).pvalue > P_FLOOR
