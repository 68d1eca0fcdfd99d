"""The line a run starts with: which kernels compute the loss, the data, and where files go."""
from __future__ import annotations

import os

import torch

from .._extension import LOAD_ERROR, has_kernel
from ..data import augmentation


def kernels_in_use(implementation: str, device: torch.device) -> str:
    if implementation == "reference":
        return "the PyTorch reference path (--implementation reference)"
    if has_kernel(device.type):
        return f"the fused {device.type} kernels"
    why = "the kernels did not load: see the warning above" if LOAD_ERROR else "this install has none"
    return f"the PyTorch reference path (no fused {device.type} kernels: {why})"


def startup_line(config, device: torch.device, train_set, eval_set, prog: str = "see-train") -> str:
    classes = len(set(train_set.labels))
    evaluation = (f"{len(eval_set.queries)} queries" if eval_set.gallery is None
                  else f"{len(eval_set.queries)} queries, {len(eval_set.gallery)} gallery items")
    augmented = ("the Glyphs distortions" if config.dataset == "glyphs"
                 else f"random resized crops and flips by {augmentation.source()}")
    return (f"{prog}: {config.loss} loss on {device} by {kernels_in_use(config.implementation, device)}; "
            f"data: {config.dataset} ({len(train_set)} training items of {classes} classes, {augmented}; "
            f"{evaluation}); checkpoint and metrics in {os.path.abspath(config.out_dir)}")
