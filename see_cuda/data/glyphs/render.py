"""Drawing one character per image: white ink on black, centred, uint8 grey."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# The em square takes this share of the image side; ideographs fill most of it.
EM_FRACTION = 0.875


def render_character(font, character: str, size: int) -> np.ndarray:
    """size x size uint8 image of `character`, its ink box centred."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), character, font=font)
    draw.text(((size - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top), character, font=font, fill=255)
    return np.asarray(image)


def render_table(faces, characters, size: int) -> np.ndarray:
    """faces x characters x size x size uint8: every character in every face."""
    table = np.zeros((len(faces), len(characters), size, size), dtype=np.uint8)
    for face_index, face in enumerate(faces):
        font = face.load(max(1, round(size * EM_FRACTION)))
        for char_index, character in enumerate(characters):
            table[face_index, char_index] = render_character(font, character, size)
    return table
