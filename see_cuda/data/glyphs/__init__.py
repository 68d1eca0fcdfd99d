"""Glyphs: a small, synthetic deep-metric-learning benchmark of CJK ideographs.

One class per character of the CJK Unified Ideographs block, one image per
font face of Google's Noto CJK fonts (Debian: fonts-noto-cjk, fonts-noto-cjk-extra);
train and test characters are disjoint, as in CUB or SOP.

    train = Glyphs("train")   # default protocol, rendered once into ~/.cache/see_cuda/glyphs
    test = Glyphs("test")
    images, labels = test.all()
"""
from .augment import RandomAffine
from .dataset import Glyphs
from .defaults import DEFAULT_PROTOCOL
from .fonts import INSTALL_HINT, FontFace, FontsMissingError, find_faces, installed_faces
from .protocol import GlyphsProtocol, split_characters

__all__ = [
    "DEFAULT_PROTOCOL",
    "FontFace",
    "FontsMissingError",
    "Glyphs",
    "GlyphsProtocol",
    "INSTALL_HINT",
    "RandomAffine",
    "find_faces",
    "installed_faces",
    "split_characters",
]
