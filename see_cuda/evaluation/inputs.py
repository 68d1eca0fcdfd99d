"""Conversion and validation of what `evaluate_retrieval` is given.

Embeddings may be torch tensors (any device, any float dtype, bfloat16 included)
or numpy float arrays; they leave here as L2-normalised float32 torch tensors,
the rows computed in float64 with a per-row scale so that no finite value
overflows or underflows on the way (a zero row stays zero). Labels may be torch
or numpy integers and leave as int64 numpy arrays. Every error names the
argument at fault.
"""
from __future__ import annotations

import numpy as np
import torch


def _check_kind(value, name: str) -> None:
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(value).__name__}")


def as_embeddings(value, name: str, device: torch.device) -> torch.Tensor:
    """N x D float32 on `device`: each row divided by its L2 norm, zero rows left zero."""
    _check_kind(value, name)
    if isinstance(value, torch.Tensor):
        if not value.dtype.is_floating_point:
            raise TypeError(f"{name} must hold floating-point values, got dtype {value.dtype}")
        shape = tuple(value.shape)
    else:
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"{name} must hold floating-point values, got dtype {value.dtype}")
        shape = value.shape
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N, D >= 1, got {shape}")
    if isinstance(value, torch.Tensor):
        wide = value.detach().to(torch.float64)  # exact for every narrower float, NaN and inf kept
        if not bool(torch.isfinite(wide).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    else:
        if not np.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        with np.errstate(over="ignore"):
            wide = torch.from_numpy(np.asarray(value, dtype=np.float64))
        if not bool(torch.isfinite(wide).all()):  # long double beyond float64
            raise ValueError(f"{name} holds values beyond the float64 range ({value.dtype}); scale them down")
    return normalised_rows(wide).to(device=device, dtype=torch.float32)


def normalised_rows(rows: torch.Tensor) -> torch.Tensor:
    """Rows divided by their norms, in float64 and scaled first by their largest magnitude,
    so that squaring neither overflows (|x| up to the float64 maximum) nor underflows."""
    scale = rows.abs().amax(dim=1, keepdim=True)
    scaled = rows / torch.where(scale > 0, scale, torch.ones_like(scale))
    norm = torch.linalg.vector_norm(scaled, dim=1, keepdim=True)
    return scaled / torch.where(norm > 0, norm, torch.ones_like(norm))


def as_labels(value, count: int, name: str, embeddings_name: str) -> np.ndarray:
    _check_kind(value, name)
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
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


def search_device(use_gpu) -> torch.device:
    """The device of the search: use_gpu None means a GPU whenever torch sees one."""
    if use_gpu is not None and not isinstance(use_gpu, bool):
        raise TypeError(f"use_gpu must be True, False or None, got {use_gpu!r}")
    available = torch.cuda.is_available()
    if use_gpu and not available:
        raise ValueError("use_gpu=True, but torch sees no CUDA device (a CPU build of torch, or no GPU); "
                         "pass use_gpu=False or None to search on the CPU")
    return torch.device("cuda" if (available if use_gpu is None else use_gpu) else "cpu")
