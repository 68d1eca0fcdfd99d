"""Datasets for deep metric learning: the four image-retrieval benchmarks, a user's images in
class folders, the synthetic Glyphs benchmark, and a class-balanced batch sampler.

Every dataset yields (image tensor, label) with labels zero-based and contiguous
within its split, and exposes `labels` (a list of ints) for samplers.
"""
from .cars import Cars196
from .class_folders import ClassFolders
from .cub import CUB200
from .glyphs import Glyphs, GlyphsProtocol
from .image_list import ImageListDataset
from .inshop import InShop
from .sampler import ClassBalancedBatchSampler
from .sop import StanfordOnlineProducts
from .transforms import IMAGENET_MEAN, IMAGENET_STD, ResizeToTensor

__all__ = [
    "CUB200",
    "Cars196",
    "ClassFolders",
    "ClassBalancedBatchSampler",
    "Glyphs",
    "GlyphsProtocol",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageListDataset",
    "InShop",
    "ResizeToTensor",
    "StanfordOnlineProducts",
]
