"""Training batches and evaluation sets of every dataset, in one shape: (images, labels).

Batches come from `ClassBalancedBatchSampler`, whose batches depend only on the
seed and the epoch. With several processes every rank draws the same global
batch and keeps its own slice, so the union of the ranks' slices is the batch
one process would train on.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import torch

from ..data import (
    CUB200,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Cars196,
    ClassBalancedBatchSampler,
    ClassFolders,
    InShop,
    StanfordOnlineProducts,
)
from ..data.augmentation import dml_transforms
from ..data.glyphs import DEFAULT_PROTOCOL, Glyphs
from .config import FlagError, glyphs_train_faces
from .glyph_classes import GlyphClasses, classes_from_pool

IMAGE_DATASETS = {"cub": CUB200, "cars": Cars196, "sop": StanfordOnlineProducts, "inshop": InShop,
                  "folders": ClassFolders}


@dataclasses.dataclass
class EvalSet:
    """Query images and labels; a separate gallery for In-Shop, else queries search each other."""
    queries: torch.utils.data.Dataset
    gallery: torch.utils.data.Dataset | None = None


# Offset of the seed that draws a run's training classes from the pool (not the run's seed:
# every run of a class count trains on the same characters).
POOL_SEED_OFFSET = 17


def glyphs_protocol(config):
    """The default protocol with the config's class counts, image size and training faces.

    With `glyphs_class_pool` the split sets aside that many training characters (the
    test characters follow them), so runs of every class count up to the pool share
    one test set; the run trains on `glyphs_train_classes` of them (`glyph_classes`).
    """
    changes = {}
    if config.glyphs_class_pool or config.glyphs_train_classes:
        changes["num_train_classes"] = config.glyphs_class_pool or config.glyphs_train_classes
    if config.glyphs_test_classes:
        changes["num_test_classes"] = config.glyphs_test_classes
    if config.glyphs_image_size:
        changes["image_size"] = config.glyphs_image_size
    if config.glyphs_train_faces:
        changes["train_faces"] = glyphs_train_faces(config.glyphs_train_faces)
    return dataclasses.replace(DEFAULT_PROTOCOL, **changes) if changes else DEFAULT_PROTOCOL


def build_glyphs_train(config, protocol):
    train = Glyphs("train", protocol)
    if not config.glyphs_class_pool or config.glyphs_train_classes in (None, config.glyphs_class_pool):
        return train
    kept = classes_from_pool(config.glyphs_class_pool, config.glyphs_train_classes,
                             protocol.split_seed + POOL_SEED_OFFSET)
    return GlyphClasses(train, kept)


def build_datasets(config):
    """(train dataset, EvalSet, input channels)."""
    if config.dataset == "glyphs":
        protocol = glyphs_protocol(config)
        return build_glyphs_train(config, protocol), EvalSet(Glyphs("test", protocol)), 1
    train_transform, _ = dml_transforms(config.image_size, IMAGENET_MEAN, IMAGENET_STD)
    return (IMAGE_DATASETS[config.dataset](config.data_root, "train", train_transform), build_image_eval_set(config),
            3)


def build_image_eval_set(config) -> EvalSet:
    """The evaluation split of an image data set (its lists only: images are read when used)."""
    _, transform = dml_transforms(config.image_size, IMAGENET_MEAN, IMAGENET_STD)
    loader = IMAGE_DATASETS[config.dataset]
    if config.dataset == "inshop":
        return EvalSet(loader(config.data_root, "query", transform), loader(config.data_root, "gallery", transform))
    return EvalSet(loader(config.data_root, "test", transform))


def searchable_items(eval_set: EvalSet) -> int:
    """How many items a query of the evaluation set can retrieve (itself excluded without a gallery)."""
    return len(eval_set.queries) - 1 if eval_set.gallery is None else len(eval_set.gallery)


def searchable_items_of(config) -> int:
    """searchable_items of the config's evaluation set, without rendering Glyphs."""
    if config.dataset == "glyphs":
        protocol = glyphs_protocol(config)
        return protocol.num_test_classes * len(protocol.test_faces) - 1
    return searchable_items(build_image_eval_set(config))


class TrainBatches:
    """Per epoch, this rank's slices of the class-balanced batches, as (images, labels)."""

    def __init__(self, dataset, config, rank: int = 0, world_size: int = 1):
        if config.batch_size % world_size:
            raise FlagError(f"--batch-size ({config.batch_size}) must be divisible by the {world_size} processes")
        self.dataset, self.rank, self.world_size = dataset, rank, world_size
        classes = len(set(dataset.labels))
        if config.batch_size // config.m_per_class > classes:
            raise FlagError(f"--batch-size {config.batch_size} / --m-per-class {config.m_per_class} = "
                            f"{config.batch_size // config.m_per_class} classes per batch, but the training set has "
                            f"only {classes} classes")
        self.sampler = ClassBalancedBatchSampler(dataset.labels, config.m_per_class, config.batch_size,
                                                 seed=config.seed, num_batches=config.batches_per_epoch)
        self.workers = config.workers
        # Draws of the Glyphs augmentation; saved in checkpoints for an exact resume.
        self.generator = torch.Generator().manual_seed(config.seed + 1_000_003)

    def __len__(self) -> int:
        return len(self.sampler)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch)
        local = self.sampler.batch_size // self.world_size
        if isinstance(self.dataset, (Glyphs, GlyphClasses)):
            for batch in self.sampler:
                # The whole batch is augmented, so the draws match a single process.
                images, labels = self.dataset.batch(batch, self.generator)
                mine = slice(self.rank * local, (self.rank + 1) * local)
                yield images[mine], labels[mine]
            return
        slices = [batch[self.rank * local:(self.rank + 1) * local] for batch in self.sampler]
        yield from torch.utils.data.DataLoader(self.dataset, batch_sampler=slices, num_workers=self.workers)


def eval_batches(dataset, batch_size: int):
    """The dataset in order, as (images, labels) batches, without augmentation."""
    if isinstance(dataset, Glyphs):
        for start in range(0, len(dataset), batch_size):
            yield dataset.batch(torch.arange(start, min(start + batch_size, len(dataset))))
        return
    yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
