"""Benchmark loaders on tiny fixture trees in the original formats, and the sampler."""
import collections

import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import make_cars, make_cub, make_inshop, make_sop, write_image
from see_cuda.data import (
    CUB200,
    Cars196,
    ClassBalancedBatchSampler,
    ImageListDataset,
    InShop,
    ResizeToTensor,
    StanfordOnlineProducts,
)
from see_cuda.data.files import DamagedFileError

TINY = ResizeToTensor(4)


def encoded_class(image: torch.Tensor) -> int:
    """The class id the fixture wrote into the red channel."""
    return round(float(image[0, 0, 0]) * 255)


@pytest.fixture(scope="module")
def cub_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("CUB_200_2011")
    make_cub(root)
    return str(root)


@pytest.fixture(scope="module")
def cars_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cars196")
    make_cars(root)
    return str(root)


@pytest.mark.parametrize("split,first_class", [("train", 1), ("test", 101)])
def test_cub_splits_classes_in_halves(cub_root, split, first_class):
    dataset = CUB200(cub_root, split, transform=TINY)
    assert len(dataset) == 200 and dataset.num_classes == 100
    assert sorted(set(dataset.labels)) == list(range(100))
    for index in (0, 57, 199):
        image, label = dataset[index]
        assert encoded_class(image) == label + first_class


@pytest.mark.parametrize("split,first_class", [("train", 1), ("test", 99)])
def test_cars_splits_classes_in_halves_ignoring_the_test_flag(cars_root, split, first_class):
    dataset = Cars196(cars_root, split, transform=TINY)
    assert len(dataset) == 196 and dataset.num_classes == 98
    assert collections.Counter(dataset.labels) == {label: 2 for label in range(98)}
    for index in (0, 101, 195):
        image, label = dataset[index]
        assert encoded_class(image) == label + first_class


def test_cars_reads_a_single_annotation(tmp_path):
    make_cars(tmp_path, num_classes=1, per_class=1)
    dataset = Cars196(str(tmp_path), "train", transform=TINY)
    assert len(dataset) == 1 and dataset.labels == [0]


def test_sop_reads_both_list_files(tmp_path):
    make_sop(tmp_path, train_classes=(1, 2, 7), test_classes=(11, 12), per_class=3)
    train = StanfordOnlineProducts(str(tmp_path), "train", transform=TINY)
    test = StanfordOnlineProducts(str(tmp_path), "test", transform=TINY)
    assert (len(train), len(test)) == (9, 6)
    assert train.labels == [0, 0, 0, 1, 1, 1, 2, 2, 2] and test.labels == [0, 0, 0, 1, 1, 1]
    assert [encoded_class(train[i][0]) for i in (0, 3, 6)] == [1, 2, 7]
    assert train.super_labels == [1, 1, 1, 0, 0, 0, 1, 1, 1]  # super classes 2, 1, 2


def test_inshop_query_and_gallery_share_item_labels(tmp_path):
    rows = [(1, "train"), (2, "train"), (2, "train"), (5, "train"),
            (3, "query"), (4, "query"), (7, "query"),
            (3, "gallery"), (4, "gallery"), (4, "gallery"), (6, "gallery"), (7, "gallery")]  # fmt: skip
    make_inshop(tmp_path, rows)
    train = InShop(str(tmp_path), "train", transform=TINY)
    query = InShop(str(tmp_path), "query", transform=TINY)
    gallery = InShop(str(tmp_path), "gallery", transform=TINY)
    assert train.labels == [0, 1, 1, 2]
    assert query.labels == [0, 1, 3] and gallery.labels == [0, 1, 1, 2, 3]
    assert [encoded_class(query[i][0]) for i in range(3)] == [3, 4, 7]
    assert [encoded_class(gallery[i][0]) for i in range(5)] == [3, 4, 4, 6, 7]


@pytest.mark.parametrize(
    "loader,split", [(CUB200, "train"), (Cars196, "test"), (StanfordOnlineProducts, "train"), (InShop, "query")]
)
def test_missing_files_name_the_expected_path(tmp_path, loader, split):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        loader(str(tmp_path), split)


def cut_file(path, keep):
    """Keeps the first `keep` bytes of a file: what an interrupted copy leaves."""
    with open(path, "r+b") as handle:
        handle.truncate(keep)


def test_truncated_cub_labels_name_the_file(tmp_path):
    make_cub(tmp_path, num_classes=4, per_class=2)
    labels = tmp_path / "image_class_labels.txt"
    cut_file(labels, len("1 1\n2 1\n3"))  # image 3's line cut short, 4 to 8 missing
    with pytest.raises(DamagedFileError, match=r"image_class_labels.txt is damaged.*line 3 is '3'.*unpack CUB200"):
        CUB200(str(tmp_path), "train")
    cut_file(labels, len("1 1\n2 1\n"))
    with pytest.raises(DamagedFileError, match=r"image_class_labels.txt is damaged.*no class for 6 image id"):
        CUB200(str(tmp_path), "train")


def test_damaged_sop_and_inshop_lists_name_the_file_and_line(tmp_path):
    make_sop(tmp_path, train_classes=(1, 2), test_classes=(3,), per_class=2)
    with open(tmp_path / "Ebay_train.txt", "a") as handle:
        handle.write("5 x 1 super1_final/5_0.png\n")
    with pytest.raises(DamagedFileError, match=r"Ebay_train.txt is damaged.*line 6 is '5 x 1"):
        StanfordOnlineProducts(str(tmp_path), "train")
    make_inshop(tmp_path, [(1, "train"), (2, "query"), (2, "gallery")])
    cut_file(tmp_path / "list_eval_partition.txt", 60)
    with pytest.raises(DamagedFileError, match=r"list_eval_partition.txt is damaged.*line 3"):
        InShop(str(tmp_path), "train")


def test_truncated_cars_annotations_name_the_file(tmp_path):
    make_cars(tmp_path, num_classes=2, per_class=2)
    cut_file(tmp_path / "cars_annos.mat", 300)
    with pytest.raises(DamagedFileError, match=r"cars_annos.mat is damaged.*unpack Cars196 again"):
        Cars196(str(tmp_path), "train")


@pytest.mark.parametrize("loader", [CUB200, Cars196, StanfordOnlineProducts, InShop])
def test_unknown_split_is_rejected(tmp_path, loader):
    with pytest.raises(ValueError, match="split"):
        loader(str(tmp_path), "validation")


def test_default_transform_and_grey_images(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((5, 7), 51, dtype=np.uint8)).save(path)
    image, label = ImageListDataset([str(path)], [3])[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32 and label == 3
    assert torch.allclose(image, torch.full_like(image, 0.2))


def test_resize_to_tensor_standardises_channels():
    transform = ResizeToTensor(2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    image = transform(Image.new("RGB", (3, 3), (255, 255, 255)))
    assert image[:, 0, 0].tolist() == [2.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="mean and std"):
        ResizeToTensor(2, mean=(0.5,))


def test_loader_batches_with_the_sampler(tmp_path):
    make_sop(tmp_path, train_classes=(1, 2, 3, 4), test_classes=(5,), per_class=4)
    dataset = StanfordOnlineProducts(str(tmp_path), "train", transform=TINY)
    sampler = ClassBalancedBatchSampler(dataset.labels, m_per_class=2, batch_size=4, seed=1)
    batches = list(torch.utils.data.DataLoader(dataset, batch_sampler=sampler))
    assert len(batches) == 4
    for images, labels in batches:
        assert images.shape == (4, 3, 4, 4)
        assert sorted(collections.Counter(labels.tolist()).values()) == [2, 2]
        assert [encoded_class(image) - 1 for image in images] == labels.tolist()


def uneven_labels():
    """12 classes of 1 to 12 images."""
    return [label for label in range(12) for _ in range(label + 1)]


def test_sampler_batches_hold_m_images_of_distinct_classes():
    labels = np.array(uneven_labels())
    sampler = ClassBalancedBatchSampler(labels, m_per_class=3, batch_size=12, num_batches=30)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 30
    class_uses = collections.Counter()
    for batch in batches:
        counts = collections.Counter(labels[batch].tolist())
        assert len(batch) == 12 and len(counts) == 4 and set(counts.values()) == {3}
        class_uses.update(counts.keys())
        for label in counts:  # no repeats within a class unless it is smaller than m
            images = [i for i in batch if labels[i] == label]
            assert len(set(images)) == min(3, label + 1)
    # Classes come from a shuffled cycle: 120 draws over 12 classes is 10 each.
    assert set(class_uses.values()) == {10}


def test_sampler_is_deterministic_given_seed_and_epoch():
    labels = uneven_labels()
    first = ClassBalancedBatchSampler(labels, 2, 8, seed=5)
    second = ClassBalancedBatchSampler(torch.tensor(labels), 2, 8, seed=5)
    epoch0, epoch1 = list(first), list(first)
    assert epoch0 == list(second) and epoch1 == list(second)
    assert epoch0 != epoch1
    first.set_epoch(0)
    assert list(first) == epoch0
    assert list(ClassBalancedBatchSampler(labels, 2, 8, seed=6)) != epoch0
    assert len(first) == len(labels) // 8


def test_sampler_cycles_through_the_images_of_a_class():
    labels = [0] * 6 + [1] * 6
    batches = list(ClassBalancedBatchSampler(labels, m_per_class=3, batch_size=6, num_batches=2))
    class0 = [i for batch in batches for i in batch if i < 6]
    assert sorted(class0) == list(range(6))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(m_per_class=0), ValueError, "m_per_class"),
        (dict(batch_size=7), ValueError, "multiple of m_per_class"),
        (dict(batch_size=2.0), TypeError, "batch_size"),
        (dict(batch_size=40), ValueError, "classes per batch"),
        (dict(labels=[0.5, 1.5]), ValueError, "labels"),
        (dict(num_batches=0), ValueError, "num_batches"),
    ],
)
def test_sampler_rejects_bad_arguments(kwargs, error, match):
    arguments = dict(labels=uneven_labels(), m_per_class=2, batch_size=8)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        ClassBalancedBatchSampler(**arguments)


def test_image_list_needs_one_label_per_path(tmp_path):
    write_image(str(tmp_path / "a.png"), 1, 0)
    with pytest.raises(ValueError, match="one entry per image"):
        ImageListDataset([str(tmp_path / "a.png")], [0, 1])
