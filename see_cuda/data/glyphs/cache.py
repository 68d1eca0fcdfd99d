"""On-disk cache of what the Glyphs benchmark renders: computed once, read many times.

Files are named by a hash of everything that determines their content, so a
changed protocol never reads stale data, and are written to a temporary name
first and renamed, so concurrent processes never see half a file
(`see_cuda.data.files`). A cached file that cannot be read, or holds the wrong
shape, is a DamagedFileError naming it: deleting it renders it again. A cached
benchmark needs neither the fonts nor fontTools.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

import numpy as np

from ..files import damaged, reading, remove_stale_temporaries, write_atomically

REMEDY = "delete it and it is computed again on the next use"

# Bump when rendering changes, to invalidate every cached file.
FORMAT_VERSION = 1


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.join(os.path.expanduser(base), "see_cuda", "glyphs")


def content_key(description) -> str:
    text = json.dumps([FORMAT_VERSION, description], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_json(path: str, compute: Callable[[], object]):
    if os.path.exists(path):
        with reading(path, REMEDY), open(path) as stored:
            return json.load(stored)
    value = compute()
    _prepare_folder(path)
    write_atomically(path, lambda handle: handle.write(json.dumps(value, ensure_ascii=True).encode()))
    return value


def cached_array(path: str, compute: Callable[[], np.ndarray], shape: tuple[int, ...] | None = None,
                 dtype=None) -> np.ndarray:
    """The array stored at `path` (memory-mapped, read-only), computed first if absent;
    DamagedFileError if the stored one cannot be read or has another shape or dtype."""
    if not os.path.exists(path):
        array = compute()
        _prepare_folder(path)
        write_atomically(path, lambda handle: np.save(handle, array))
    with reading(path, REMEDY):
        array = np.load(path, mmap_mode="r")
    if (shape is not None and array.shape != tuple(shape)) or (dtype is not None and array.dtype != dtype):
        expected = f"{np.dtype(dtype or array.dtype)} {tuple(shape or array.shape)}"
        raise damaged(path, f"holds {array.dtype} {array.shape}, expected {expected}", REMEDY)
    return array


def _prepare_folder(path: str) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(folder)
