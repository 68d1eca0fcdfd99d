"""Argument checks shared by the benchmark loaders."""
from __future__ import annotations


def check_split(split, allowed: tuple[str, ...], dataset: str) -> str:
    if split not in allowed:
        raise ValueError(f"{dataset}: split must be one of {allowed}, got {split!r}")
    return split
