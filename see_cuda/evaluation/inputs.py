"""Conversion and validation of what `evaluate_retrieval` is given.

Embeddings and labels may be torch tensors (any device, any float dtype) or
numpy arrays; they leave here as contiguous float32 / int64 numpy arrays, which
is what faiss takes. Every error names the argument at fault.
"""
from __future__ import annotations

import numpy as np
import torch


def to_numpy(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(value).__name__}")


def as_embeddings(value, name: str) -> np.ndarray:
    array = to_numpy(value, name)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point values, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N, D >= 1, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    # A copy: the search normalises it in place, and the caller's data must not change.
    return np.array(array, dtype=np.float32, order="C", copy=True)


def as_labels(value, count: int, name: str, embeddings_name: str) -> np.ndarray:
    array = to_numpy(value, name)
    if not (np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.shape != (count,):
        raise ValueError(f"{name} must have shape ({count},) to match {embeddings_name}, got {array.shape}")
    return np.ascontiguousarray(array, dtype=np.int64)


def as_ks(ks) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    try:
        values = tuple(ks)
    except TypeError:
        raise TypeError(f"ks must be an int or a sequence of ints, got {type(ks).__name__}") from None
    if not values:
        raise ValueError("ks must name at least one K")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"ks must hold ints, got {k!r}")
        if k < 1:
            raise ValueError(f"ks must hold values >= 1, got {k}")
    return tuple(sorted(set(int(k) for k in values)))


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)
