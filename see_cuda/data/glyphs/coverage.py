"""Which CJK Unified Ideographs a font face can draw.

With fontTools the face's character map answers directly. Without it, a
character counts as covered when its rendering differs from the face's .notdef
glyph (the box drawn for characters a font lacks), found by rendering a code
point no font maps.
"""
from __future__ import annotations

import numpy as np

from .fonts import FontFace

CJK_UNIFIED_IDEOGRAPHS = range(0x4E00, 0xA000)
_UNMAPPED = "\U0010fffd"  # private use, plane 16: in no Noto font
_PROBE_SIZE = 24


def covered_codepoints(face: FontFace, candidates=CJK_UNIFIED_IDEOGRAPHS, use_font_tools: bool = True) -> set[int]:
    try:
        if not use_font_tools:
            raise ImportError
        from fontTools.ttLib import TTCollection
    except ImportError:
        return _covered_by_rendering(face, candidates)
    character_map = TTCollection(face.path, lazy=True).fonts[face.index].getBestCmap()
    return {code for code in candidates if code in character_map}


def _covered_by_rendering(face: FontFace, candidates) -> set[int]:
    font = face.load(_PROBE_SIZE)
    notdef = _bitmap(font, _UNMAPPED)
    covered = set()
    for code in candidates:
        bitmap = _bitmap(font, chr(code))
        if bitmap.shape != notdef.shape or not np.array_equal(bitmap, notdef):
            covered.add(code)
    return covered


def _bitmap(font, character: str) -> np.ndarray:
    mask = font.getmask(character)
    return np.asarray(mask, dtype=np.uint8).reshape(mask.size[1], mask.size[0])


def common_ideographs(faces, use_font_tools: bool = True) -> list[str]:
    """The CJK Unified Ideographs every face in `faces` covers, in code point order."""
    common = set(CJK_UNIFIED_IDEOGRAPHS)
    for face in faces:
        common &= covered_codepoints(face, sorted(common), use_font_tools)
    return [chr(code) for code in sorted(common)]
