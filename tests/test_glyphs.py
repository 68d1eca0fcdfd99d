"""The Glyphs benchmark: fonts, coverage, rendering, caching, distortions and the dataset."""
import math

import numpy as np
import pytest
import torch

from see_cuda.data.files import DamagedFileError
from see_cuda.data.glyphs import (
    DEFAULT_PROTOCOL,
    INSTALL_HINT,
    FontsMissingError,
    Glyphs,
    GlyphsProtocol,
    RandomAffine,
    find_faces,
    installed_faces,
    split_characters,
)
from see_cuda.data.glyphs import dataset as glyph_dataset
from see_cuda.data.glyphs.augment import warp
from see_cuda.data.glyphs.coverage import CJK_UNIFIED_IDEOGRAPHS, covered_codepoints
from see_cuda.data.glyphs.render import render_character, render_table

needs_fonts = pytest.mark.skipif(
    not installed_faces(), reason=f"Noto CJK fonts are not installed ({INSTALL_HINT})"
)
TWO_FACES = ("Sans-Regular-JP", "Serif-Bold-SC")


def small_protocol(**changes):
    settings = dict(
        train_faces=TWO_FACES, test_faces=("Serif-Regular-KR",), num_train_classes=12, num_test_classes=8, image_size=32
    )
    settings.update(changes)
    return GlyphsProtocol(**settings)


def test_missing_fonts_name_the_packages(tmp_path):
    with pytest.raises(FontsMissingError, match="apt-get install fonts-noto-cjk fonts-noto-cjk-extra"):
        find_faces(["Sans-Regular-JP"], font_dirs=(str(tmp_path),))


@needs_fonts
def test_missing_face_names_the_packages():
    with pytest.raises(FontsMissingError, match="fonts-noto-cjk-extra"):
        find_faces(["Sans-Regular-XX"])


@needs_fonts
def test_installed_faces_cover_families_weights_and_regions():
    faces = installed_faces()
    assert {"Sans-Regular-JP", "Serif-Regular-JP", "Sans-Bold-SC", "Serif-Bold-KR"} <= set(faces)
    assert {face.family for face in faces.values()} == {"Sans", "Serif"}
    assert {face.region for face in faces.values()} == {"JP", "KR", "SC", "TC", "HK"}
    assert not any("Mono" in name for name in faces)
    face = faces["Serif-Bold-SC"]
    assert face.load(20).getname() == ("Noto Serif CJK SC", "Bold")


@needs_fonts
def test_coverage_by_character_map_and_by_rendering_agree():
    face = find_faces(["Sans-Regular-JP"])[0]
    # The block's last code points are newer than the fonts; the first are in every font.
    candidates = list(range(0x4E00, 0x4E10)) + list(range(0x9FE0, 0xA000))
    by_map = covered_codepoints(face, candidates)
    by_rendering = covered_codepoints(face, candidates, use_font_tools=False)
    assert by_map == by_rendering
    assert set(range(0x4E00, 0x4E10)) <= by_map and len(by_map) < len(candidates)


@needs_fonts
def test_character_split_is_disjoint_covered_and_seeded():
    protocol = small_protocol()
    split = split_characters(protocol)
    assert len(split["train"]) == 12 and len(split["test"]) == 8
    assert not set(split["train"]) & set(split["test"])
    assert all(ord(c) in CJK_UNIFIED_IDEOGRAPHS for c in split["train"] + split["test"])
    chosen = [ord(c) for c in split["train"] + split["test"]]
    for face in find_faces(protocol.split_description()["faces"]):
        assert covered_codepoints(face, chosen) == set(chosen)
    assert split_characters(small_protocol()) == split
    assert split_characters(small_protocol(split_seed=1)) != split


@needs_fonts
def test_rendering_is_centred_grey_ink():
    font = find_faces(["Sans-Bold-JP"])[0].load(56)
    image = render_character(font, "口", 64)
    assert image.shape == (64, 64) and image.dtype == np.uint8 and image.max() == 255
    rows, cols = np.nonzero(image > 127)
    assert abs(rows.mean() - 31.5) < 2 and abs(cols.mean() - 31.5) < 2
    table = render_table(find_faces(TWO_FACES), "永口", 32)
    assert table.shape == (2, 2, 32, 32)
    assert not np.array_equal(table[0, 0], table[1, 0]) and not np.array_equal(table[0, 0], table[0, 1])


def test_warp_rotates_scales_and_shifts_as_stated():
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 1, 2:6] = 1.0  # a bar near the top
    quarter_turn = warp(image, torch.tensor([math.pi / 2]), torch.ones(1), torch.zeros(1, 2))
    assert torch.allclose(quarter_turn, torch.rot90(image, k=-1, dims=(2, 3)), atol=1e-5)
    two_pixels_right = warp(image, torch.zeros(1), torch.ones(1), torch.tensor([[4 / 8, 0.0]]))
    assert torch.allclose(two_pixels_right[..., 4:], image[..., 2:6], atol=1e-5)
    assert torch.allclose(two_pixels_right[..., :4], torch.zeros(1, 1, 8, 4), atol=1e-5)
    block = torch.zeros(1, 1, 16, 16)
    block[0, 0, 5:7, 5:7] = 1.0  # centred 2 pixels up and left of the image centre, 7.5
    doubled = warp(block, torch.zeros(1), torch.full((1,), 2.0), torch.zeros(1, 2))[0, 0]
    assert float(doubled.sum()) == pytest.approx(4 * 4, rel=0.05)  # area grows 4-fold
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centroid = ((doubled * rows).sum() / doubled.sum(), (doubled * cols).sum() / doubled.sum())
    assert [float(c) for c in centroid] == pytest.approx([7.5 - 4, 7.5 - 4], abs=0.05)


def test_random_affine_is_reproducible_and_stays_within_bounds():
    augmentation = RandomAffine(max_rotation=10, scale_range=(0.9, 1.1), max_shift=0.05)
    angles, scales, shifts = augmentation.sample(1000, torch.Generator().manual_seed(0))
    assert angles.abs().max() <= math.radians(10) and 0.9 <= scales.min() and scales.max() <= 1.1
    assert shifts.abs().max() <= 0.1  # 0.05 of the side is 0.1 in [-1, 1] units
    images = torch.rand(5, 1, 16, 16)
    first = augmentation(images, torch.Generator().manual_seed(3))
    again = augmentation(images, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and not torch.equal(first, images)
    assert augmentation(images[0], torch.Generator().manual_seed(3)).shape == (1, 16, 16)
    with pytest.raises(ValueError, match="scale_range"):
        RandomAffine(scale_range=(1.2, 1.1))


@pytest.mark.parametrize(
    "changes,match",
    [(dict(train_faces="Sans-Regular-JP"), "train_faces"), (dict(test_faces=()), "test_faces"),
     (dict(num_test_classes=0), "num_test_classes"), (dict(image_size=2.5), "image_size")],  # fmt: skip
)
def test_protocol_rejects_bad_settings(changes, match):
    with pytest.raises(ValueError, match=match):
        small_protocol(**changes)


@needs_fonts
def test_dataset_splits_labels_and_images(tmp_path):
    protocol = small_protocol(train_augmentation=None)
    train = Glyphs("train", protocol, cache_dir=str(tmp_path))
    test = Glyphs("test", protocol, cache_dir=str(tmp_path))
    assert (len(train), train.num_classes, len(test), test.num_classes) == (24, 12, 8, 8)
    assert train.labels == list(range(12)) * 2
    assert not set(train.characters) & set(test.characters)
    image, label = train[13]  # character 1 in the second face
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32 and label == 1
    assert 0.0 <= float(image.min()) and float(image.max()) == 1.0
    expected = render_table(find_faces(TWO_FACES[1:]), train.characters[1], 32)[0, 0]
    assert torch.equal(image[0], torch.from_numpy(expected).float() / 255)
    images, labels = train.batch([0, 13, -1])
    assert images.shape == (3, 1, 32, 32) and labels.tolist() == [0, 1, 11]
    with pytest.raises(IndexError):
        train[24]
    with pytest.raises(ValueError, match="split"):
        Glyphs("validation", protocol, cache_dir=str(tmp_path))


@needs_fonts
def test_cached_dataset_needs_no_fonts(tmp_path, monkeypatch):
    protocol = small_protocol()
    first = Glyphs("test", protocol, cache_dir=str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 2  # the character split and the test renderings

    def no_fonts(*args, **kwargs):
        raise FontsMissingError("fonts must not be needed once cached")

    monkeypatch.setattr(glyph_dataset, "find_faces", no_fonts)
    monkeypatch.setattr("see_cuda.data.glyphs.protocol.find_faces", no_fonts)
    again = Glyphs("test", protocol, cache_dir=str(tmp_path))
    assert again.characters == first.characters
    assert torch.equal(again.all()[0], first.all()[0])


@needs_fonts
def test_damaged_cache_files_are_named_with_what_to_do(tmp_path):
    protocol = small_protocol()
    Glyphs("test", protocol, cache_dir=str(tmp_path))
    renderings = next(tmp_path.glob("renderings-*.npy"))
    with open(renderings, "r+b") as handle:
        handle.truncate(renderings.stat().st_size // 2)  # an interrupted copy of the cache
    with pytest.raises(DamagedFileError, match=r"renderings-.*\.npy is damaged.*delete it"):
        Glyphs("test", protocol, cache_dir=str(tmp_path))
    renderings.unlink()  # as the message says: rendered again
    assert len(Glyphs("test", protocol, cache_dir=str(tmp_path))) == 8
    characters = next(tmp_path.glob("characters-*.json"))
    characters.write_text('{"train": "\u4e00", "test": "\u4e01"}')  # readable, but not this split's
    with pytest.raises(DamagedFileError, match=r"characters-.*\.json is damaged.*not 12 training and 8 test"):
        Glyphs("test", protocol, cache_dir=str(tmp_path))


@needs_fonts
def test_training_images_are_augmented_and_test_distortions_fixed(tmp_path):
    distortion = RandomAffine(max_rotation=10, scale_range=(0.9, 1.1), max_shift=0.08)
    protocol = small_protocol(train_augmentation=distortion, test_distortion=distortion)
    train = Glyphs("train", protocol, cache_dir=str(tmp_path))
    plain = Glyphs("train", protocol, cache_dir=str(tmp_path), augment=False)
    assert not torch.equal(train[0][0], train[0][0])
    assert torch.equal(plain[0][0], plain[0][0])
    test = Glyphs("test", protocol, cache_dir=str(tmp_path))
    undistorted = Glyphs("test", small_protocol(), cache_dir=str(tmp_path))
    assert torch.equal(test.all()[0], Glyphs("test", protocol, cache_dir=str(tmp_path)).all()[0])
    assert torch.equal(test[5][0], test.all()[0][5])  # one at a time or all at once: same draw
    assert not torch.equal(test.all()[0], undistorted.all()[0])


@needs_fonts
def test_default_protocol_builds(tmp_path):
    protocol = DEFAULT_PROTOCOL
    assert (protocol.num_train_classes, protocol.num_test_classes, protocol.image_size) == (1000, 1000, 64)
    train = Glyphs("train", cache_dir=str(tmp_path))
    test = Glyphs("test", cache_dir=str(tmp_path))
    assert len(train) == 1000 * len(protocol.train_faces) and len(test) == 1000 * len(protocol.test_faces)
    assert not set(train.characters) & set(test.characters)
    images, labels = test.all()
    assert images.shape == (len(test), 1, 64, 64) and labels.max() == 999
