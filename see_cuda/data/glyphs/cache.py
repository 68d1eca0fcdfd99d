"""On-disk cache of what the Glyphs benchmark renders: computed once, read many times.

Files are named by a hash of everything that determines their content, so a
changed protocol never reads stale data, and are written to a temporary name
first and renamed, so concurrent processes never see half a file. A cached
benchmark needs neither the fonts nor fontTools.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

import numpy as np

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
        with open(path) as stored:
            return json.load(stored)
    value = compute()
    _write_atomically(path, lambda handle: handle.write(json.dumps(value, ensure_ascii=True).encode()))
    return value


def cached_array(path: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array stored at `path` (memory-mapped, read-only), computed first if absent."""
    if not os.path.exists(path):
        array = compute()
        _write_atomically(path, lambda handle: np.save(handle, array))
    return np.load(path, mmap_mode="r")


def _write_atomically(path: str, write: Callable) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        write(handle)
    os.replace(temporary, path)
