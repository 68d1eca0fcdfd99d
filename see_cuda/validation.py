"""Checks of user input, made once at the public API so kernels can trust it.

Each check raises TypeError (wrong kind of thing) or ValueError (wrong value)
with the argument's name and what was expected. Checks that must read tensor
values (label range, finiteness) run on CPU tensors only: on a GPU they would
stall the stream, and the fused CUDA path promises not to.
"""
from __future__ import annotations

import math

import torch

from .selection import MODES

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LOW_PRECISION = (torch.float16, torch.bfloat16)


def _reads_values(t: torch.Tensor) -> bool:
    return t.device.type == "cpu"


def check_float_matrix(t, name: str, shape_doc: str, read_values: bool = True) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), got {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D with shape {shape_doc}, got shape {tuple(t.shape)}")
    if read_values:
        check_finite(t, name)


def check_finite(t: torch.Tensor, name: str) -> None:
    if _reads_values(t) and not all_finite(t):
        raise ValueError(f"{name} contains NaN or infinite values")


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite, in one read of t for the common case.

    A finite sum proves every entry finite (a NaN or an infinity would make it
    NaN or infinite); only a non-finite sum, which large finite values can also
    give, needs the entry-wise check.
    """
    return math.isfinite(t.sum().item()) or bool(torch.isfinite(t).all())


def check_labels(labels, batch_size: int, num_classes: int, name: str = "labels", read_values: bool = True) -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B,), got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (e.g. torch.int64), got {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(f"{name} must have shape ({batch_size},) to match embeddings, got {tuple(labels.shape)}")
    if read_values:
        check_label_range(labels, num_classes, name)


def check_label_range(labels: torch.Tensor, num_classes: int, name: str = "labels") -> None:
    if _reads_values(labels) and labels.numel() > 0:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}) (the number of proxies), got values in [{lo}, {hi}]")


def check_same_device(tensors: dict) -> None:
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {d}" for name, d in devices.items())
        raise ValueError(f"all tensors must be on one device, got {listing}")


def compute_dtype(embeddings: torch.Tensor, proxies: torch.Tensor) -> torch.dtype:
    """The dtype the loss is computed in; rejects pairs that are not a known pattern.

    Allowed: equal dtypes, or float16/bfloat16 embeddings with float32 proxies
    (mixed precision, where the proxies stay float32 parameters).
    """
    if embeddings.dtype == proxies.dtype:
        return embeddings.dtype
    if embeddings.dtype in LOW_PRECISION and proxies.dtype == torch.float32:
        return torch.float32
    raise TypeError(
        f"proxies must have the dtype of embeddings ({embeddings.dtype}), or float32 when embeddings "
        f"are float16/bfloat16; got proxies of {proxies.dtype}"
    )


def check_positive_int(value, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_real(value, name: str, low: float | None = None, high: float | None = None, strict_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if strict_low else value < low):
        raise ValueError(f"{name} must be {'>' if strict_low else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")


def check_dim_for_expansion(dim: int, n_expansion: int, name: str = "n_expansion") -> None:
    """The frame needs w, u and n-1 more orthonormal directions: D >= n + 1."""
    check_positive_int(n_expansion, name)
    if dim < n_expansion + 1:
        raise ValueError(
            f"{name}={n_expansion} needs an embedding dimension D >= {n_expansion + 1} (n + 1), got D = {dim}"
        )


def check_noise(noise, rows: int, n_expansion: int, dim: int, name: str = "noise") -> None:
    if noise is None:
        return
    expected = (rows, n_expansion - 1, dim)
    if not isinstance(noise, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(noise).__name__}")
    if not noise.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {noise.dtype}")
    if tuple(noise.shape) != expected:
        raise ValueError(f"{name} must have shape {expected} (rows, n_expansion - 1, D), got {tuple(noise.shape)}")
    if not _reads_values(noise):
        return
    if not all_finite(noise):
        raise ValueError(f"{name} contains NaN or infinite values")
    if noise.numel() > 0 and bool((noise.abs().amax(-1) == 0).any()):
        raise ValueError(f"{name} has an all-zero draw: each (n-1) x D slice needs nonzero rows to span a frame")


def check_generator(generator, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but the embeddings are on {device}")


def check_loss_options(alpha, margin) -> None:
    check_real(alpha, "alpha", low=0.0, strict_low=True)
    check_real(margin, "margin")


def check_see_options(n_expansion, lam, mode, ratio, threshold, dim: int) -> None:
    check_dim_for_expansion(dim, n_expansion)
    check_real(lam, "lam", low=0.0)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_real(ratio, "ratio", low=0.0, high=1.0)
    check_real(threshold, "threshold")


def check_loss_inputs(embeddings, labels, proxies, read_values: bool = True) -> torch.dtype:
    """Shapes, dtypes, devices and values of a loss call; returns the compute dtype.

    read_values=False leaves the value checks (check_loss_values) to a kernel
    that makes them itself, so that the batch is not read an extra time.
    """
    check_float_matrix(embeddings, "embeddings", "(B, D)", read_values)
    check_float_matrix(proxies, "proxies", "(C, D)", read_values)
    B, D = embeddings.shape
    C, D_p = proxies.shape
    if B == 0:
        raise ValueError("embeddings must hold at least one row, got shape (0, D)")
    if C == 0:
        raise ValueError("proxies must hold at least one class, got shape (0, D)")
    if D_p != D:
        raise ValueError(f"proxies must have shape (C, {D}) to match embeddings' D = {D}, got {tuple(proxies.shape)}")
    check_labels(labels, B, C, read_values=read_values)
    check_same_device({"embeddings": embeddings, "labels": labels, "proxies": proxies})
    return compute_dtype(embeddings, proxies)


def check_loss_values(embeddings, labels, proxies) -> None:
    """The value checks that check_loss_inputs(read_values=False) left out."""
    check_finite(embeddings, "embeddings")
    check_finite(proxies, "proxies")
    check_label_range(labels, proxies.shape[0])
