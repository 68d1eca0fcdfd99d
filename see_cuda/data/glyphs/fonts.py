"""The Noto CJK font faces the Glyphs benchmark renders with.

A face is a (family, weight, region) triple, written "Sans-Regular-JP". The
Debian packages fonts-noto-cjk (Regular and Bold) and fonts-noto-cjk-extra (the
other weights) install one .ttc file per family and weight; each file holds one
face per region (JP, KR, SC, TC, HK), plus monospaced ones that are skipped.
"""
from __future__ import annotations

import functools
import glob
import os
import re
from dataclasses import dataclass

from PIL import ImageFont

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
INSTALL_HINT = "apt-get install fonts-noto-cjk fonts-noto-cjk-extra"
_FILE_PATTERN = re.compile(r"Noto(Sans|Serif)CJK-(\w+)\.ttc$")
_FACE_NAME = re.compile(r"Noto (Sans|Serif) CJK (\w+)$")


class FontsMissingError(FileNotFoundError):
    """The Noto CJK fonts, or some of the faces asked for, are not installed."""


@dataclass(frozen=True)
class FontFace:
    family: str  # "Sans" or "Serif"
    weight: str  # e.g. "Regular", "Black"
    region: str  # "JP", "KR", "SC", "TC" or "HK"
    path: str
    index: int  # the face's position inside the .ttc file

    @property
    def name(self) -> str:
        return f"{self.family}-{self.weight}-{self.region}"

    def load(self, size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(self.path, size, index=self.index)


@functools.lru_cache(maxsize=None)
def installed_faces(font_dirs: tuple[str, ...] = FONT_DIRS) -> dict[str, FontFace]:
    """Every Noto CJK face under `font_dirs`, by name; monospaced faces left out."""
    faces = {}
    for font_dir in font_dirs:
        for path in sorted(glob.glob(os.path.join(os.path.expanduser(font_dir), "**", "*.ttc"), recursive=True)):
            match = _FILE_PATTERN.search(os.path.basename(path))
            if match:
                for face in _faces_in_file(path, family=match.group(1)):
                    faces.setdefault(face.name, face)
    return faces


def _faces_in_file(path: str, family: str) -> list[FontFace]:
    faces = []
    for index in range(64):
        try:
            font_name, weight = ImageFont.truetype(path, 16, index=index).getname()
        except OSError:  # past the last face of the collection
            break
        match = _FACE_NAME.match(font_name)
        if match and match.group(1) == family:
            faces.append(FontFace(family, weight, match.group(2), path, index))
    return faces


def find_faces(names, font_dirs: tuple[str, ...] = FONT_DIRS) -> list[FontFace]:
    """The installed faces called `names` ("Sans-Regular-JP", ...), in that order."""
    available = installed_faces(tuple(font_dirs))
    if not available:
        raise FontsMissingError(
            f"no Noto CJK fonts (NotoSansCJK-*.ttc, NotoSerifCJK-*.ttc) under {', '.join(font_dirs)}; "
            f"the Glyphs benchmark needs them: {INSTALL_HINT}"
        )
    missing = [name for name in names if name not in available]
    if missing:
        raise FontsMissingError(
            f"font faces {missing} are not installed (weights other than Regular and Bold come with "
            f"fonts-noto-cjk-extra): {INSTALL_HINT}; installed faces: {sorted(available)}"
        )
    return [available[name] for name in names]
